"""Fixtures: two trust domains with real certificates, and the callbacks a gateway installs."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import trio

from federation.trust import tls as trust_tls
from proxy.routes.table import Endpoint, Locality
from proxy.upstream import PoolSettings, UpstreamPools, open_upstream_pools
from tests.helpers.pki import bundle_set, issue_svid, make_ca
from tests.integration.upstream.servers import H1Server, H2Server

GATEWAY_B = "spiffe://b.test/ns/isthmus/sa/gateway"


@dataclass
class Pki:
    server_context: ssl.SSLContext
    client_context: ssl.SSLContext
    verify_calls: list[str]

    def verify_peer(self, endpoint: Endpoint, ssl_object: ssl.SSLObject) -> None:
        """What the gateway installs: the peer must present ``endpoint.expected_identity``."""
        bundles = bundle_set(CAS[0], CAS[1])
        presented = str(trust_tls.verify_peer(ssl_object, bundles, datetime.now(UTC)))
        self.verify_calls.append(presented)
        if presented != endpoint.expected_identity:
            raise ValueError(f"presented {presented}")


CAS = (make_ca("a.test"), make_ca("b.test"))


@pytest.fixture(scope="session")
def contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca_a, ca_b = CAS
    bundles = bundle_set(ca_a, ca_b)
    server = trust_tls.server_context(issue_svid(ca_b, GATEWAY_B), bundles, ["h2"])
    client = trust_tls.client_context(
        issue_svid(ca_a, "spiffe://a.test/ns/isthmus/sa/gateway"), bundles, ["h2"]
    )
    return server, client


@pytest.fixture
def pki(contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> Pki:
    return Pki(contexts[0], contexts[1], [])


def peer(port: int, identity: str = GATEWAY_B, key: str = "gw-b") -> Endpoint:
    return Endpoint(key, "127.0.0.1", port, "peer", Locality("b"), expected_identity=identity)


def local(port: int, kind: str = "http1", key: str = "backend") -> Endpoint:
    return Endpoint(key, "127.0.0.1", port, kind, Locality("a"))  # type: ignore[arg-type]


@pytest.fixture
async def peer_server(nursery: trio.Nursery, pki: Pki) -> H2Server:
    server = H2Server(ssl_context=pki.server_context)
    await nursery.start(server.serve)
    return server


@pytest.fixture
async def h2c_server(nursery: trio.Nursery) -> H2Server:
    server = H2Server()
    await nursery.start(server.serve)
    return server


@pytest.fixture
async def h1_server(nursery: trio.Nursery) -> H1Server:
    server = H1Server()
    await nursery.start(server.serve)
    return server


PoolsFactory = Callable[..., "AsyncIterator[UpstreamPools]"]


@pytest.fixture
async def pools(pki: Pki) -> AsyncIterator[UpstreamPools]:
    async with open_upstream_pools(
        client_context_for=lambda _ep: pki.client_context,
        verify_peer=pki.verify_peer,
        settings=PoolSettings(connect_timeout_s=2, acquire_timeout_s=2),
    ) as p:
        yield p
