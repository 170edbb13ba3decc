"""Two gateways over real mTLS: A (outbound, routes to peer B) and B (inbound, local backends)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from proxy.listeners import ListenerLimits, PeerIdentity
from proxy.routes.table import Endpoint, Locality, Route, RoutingTable
from tests.integration.proxy.certs import CA, Leaf, client_context, server_context
from tests.integration.proxy.harness import (
    FAST_RETRY,
    Gateway,
    local_endpoint,
    route,
    running_gateway,
    table,
)

ID_A = "spiffe://a.test/isthmus/gateway/a"
ID_B = "spiffe://b.test/isthmus/gateway/b"


def peer_uri(ssl_object: ssl.SSLObject) -> str:
    cert = ssl_object.getpeercert() or {}
    return next((v for k, v in cert.get("subjectAltName", ()) if k == "URI"), "")


def admit_gateway_a(ssl_object: ssl.SSLObject) -> PeerIdentity:
    """B's verify_peer: only gateway A, reported as cluster ``a`` with identity ``ID_A``."""
    if peer_uri(ssl_object) != ID_A:
        raise PermissionError(f"unknown peer {peer_uri(ssl_object)}")
    return PeerIdentity(cluster="a", identity=ID_A)


def expect_identity(endpoint: Endpoint, ssl_object: ssl.SSLObject) -> None:
    if peer_uri(ssl_object) != endpoint.expected_identity:
        raise PermissionError(f"{endpoint.key} presented {peer_uri(ssl_object)}")


def peer_endpoint(port: int, key: str = "gw-b") -> Endpoint:
    return Endpoint(key, "127.0.0.1", port, "peer", Locality("b"), expected_identity=ID_B)


def db_tunnel_routes(target_port: int) -> tuple[list[Route], RoutingTable]:
    """Routes of A and B for ``db.shop``: A sends its CONNECTs to peer B, which admits
    cluster ``a`` and tunnels to 127.0.0.1:``target_port``."""
    routes_b = table(
        route(
            "db.shop",
            (local_endpoint("db-b", 1, cluster="b"),),
            tcp_targets=(("127.0.0.1", target_port),),
            allowed_sources=frozenset({"a"}),
        ),
        cluster="b",
    )
    return [route("db.shop", (peer_endpoint(0),), retry=FAST_RETRY)], routes_b


@dataclass
class Pair:
    a: Gateway
    b: Gateway


@asynccontextmanager
async def gateway_b(
    pki: tuple[CA, Leaf, Leaf], routing: RoutingTable, limits: ListenerLimits | None = None
) -> AsyncIterator[Gateway]:
    ca, b_leaf, _ = pki
    async with running_gateway(
        routing,
        limits=limits,
        inbound_context=server_context(ca, b_leaf),
        verify_downstream=admit_gateway_a,
    ) as gw:
        yield gw


@asynccontextmanager
async def gateway_pair(
    pki: tuple[CA, Leaf, Leaf],
    routes_a: list[Route],
    routing_b: RoutingTable,
    *,
    limits_a: ListenerLimits | None = None,
    limits_b: ListenerLimits | None = None,
) -> AsyncIterator[Pair]:
    """B first (its inbound port goes into A's routes as ``gw-b``)."""
    ca, _, a_leaf = pki
    async with AsyncExitStack() as stack:
        b = await stack.enter_async_context(gateway_b(pki, routing_b, limits_b))
        routing_a = RoutingTable(
            1,
            "a",
            {
                r.service: Route(
                    r.service,
                    tuple(
                        type(g)(
                            tuple(
                                peer_endpoint(b.inbound_port) if ep.key == "gw-b" else ep
                                for ep in g.endpoints
                            )
                        )
                        for g in r.priorities
                    ),
                    tcp_targets=r.tcp_targets,
                    retry=r.retry,
                    allowed_sources=r.allowed_sources,
                )
                for r in routes_a
            },
        )
        ctx = client_context(ca, a_leaf)
        a = await stack.enter_async_context(
            running_gateway(
                routing_a,
                limits=limits_a,
                client_context_for=lambda _ep: ctx,
                verify_upstream=expect_identity,
            )
        )
        yield Pair(a, b)
