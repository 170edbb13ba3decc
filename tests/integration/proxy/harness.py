"""A running outbound (and optionally inbound) listener with the real engine and the real
upstream pools, plus the routes tests need."""

from __future__ import annotations

import random
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from proxy.engine import ForwardingEngine, RequestRecord, TunnelRecord, UpstreamEvent
from proxy.listeners import (
    DrainSignal,
    ListenerLimits,
    RequestHandler,
    VerifyPeer,
    serve_listener,
)
from proxy.routes.table import (
    Endpoint,
    Locality,
    PriorityGroup,
    RetrySettings,
    Route,
    RoutingTable,
)
from proxy.upstream import PoolSettings, open_upstream_pools


@dataclass
class RecordingObserver:
    requests: list[RequestRecord] = field(default_factory=list)
    tunnels: list[TunnelRecord] = field(default_factory=list)
    events: list[UpstreamEvent] = field(default_factory=list)

    def on_request_done(self, record: RequestRecord) -> None:
        self.requests.append(record)

    def on_tunnel_done(self, record: TunnelRecord) -> None:
        self.tunnels.append(record)

    def on_upstream_event(self, event: UpstreamEvent) -> None:
        self.events.append(event)


@dataclass
class Gateway:
    port: int
    engine: ForwardingEngine
    drain: DrainSignal
    observer: RecordingObserver
    inbound_port: int = 0


def local_endpoint(key: str, port: int, kind: str = "http1", cluster: str = "a") -> Endpoint:
    return Endpoint(key, "127.0.0.1", port, kind, Locality(cluster))  # type: ignore[arg-type]


def route(service: str, *groups: tuple[Endpoint, ...], **kwargs: object) -> Route:
    return Route(service, tuple(PriorityGroup(g) for g in groups), **kwargs)  # type: ignore[arg-type]


def table(*routes: Route, cluster: str = "a") -> RoutingTable:
    return RoutingTable(1, cluster, {r.service: r for r in routes})


FAST_RETRY = RetrySettings(attempts=3, per_try_timeout_s=30.0)


async def serve_backend(
    nursery: trio.Nursery, handler: RequestHandler, limits: ListenerLimits | None = None
) -> int:
    """A backend served by the proxy's own HTTP/1.1 + h2c listener code."""
    port: int = await nursery.start(
        lambda task_status: serve_listener(
            handler, kind="outbound", limits=limits or ListenerLimits(), task_status=task_status
        )
    )
    return port


def _no_tls(endpoint: Endpoint) -> ssl.SSLContext:
    raise AssertionError(f"no TLS expected towards {endpoint.key}")


def _no_verify(endpoint: Endpoint, ssl_object: ssl.SSLObject) -> None:
    raise AssertionError("no peer expected")


@asynccontextmanager
async def running_gateway(
    routing: RoutingTable,
    *,
    limits: ListenerLimits | None = None,
    client_context_for: Callable[[Endpoint], ssl.SSLContext] = _no_tls,
    verify_upstream: Callable[[Endpoint, ssl.SSLObject], None] = _no_verify,
    inbound_context: ssl.SSLContext | None = None,
    verify_downstream: VerifyPeer | None = None,
) -> AsyncIterator[Gateway]:
    observer = RecordingObserver()
    drain = DrainSignal()
    limits = limits or ListenerLimits()
    async with (
        open_upstream_pools(
            client_context_for=client_context_for,
            verify_peer=verify_upstream,
            settings=PoolSettings(connect_timeout_s=2.0),
        ) as pools,
        trio.open_nursery() as nursery,
    ):
        engine = ForwardingEngine(routing, upstream=pools, observer=observer, rng=random.Random(7))
        port: int = await nursery.start(
            lambda task_status: serve_listener(
                engine, kind="outbound", limits=limits, drain=drain, task_status=task_status
            )
        )
        gw = Gateway(port, engine, drain, observer)
        if inbound_context is not None:
            assert verify_downstream is not None
            gw.inbound_port = await nursery.start(
                lambda task_status: serve_listener(
                    engine,
                    kind="inbound",
                    limits=limits,
                    drain=drain,
                    ssl_context=inbound_context,
                    verify_peer=verify_downstream,
                    validate_inbound_headers=False,
                    task_status=task_status,
                )
            )
        try:
            yield gw
        finally:
            drain.drain()
            nursery.cancel_scope.cancel()


async def eventually(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait (bounded) for a condition another task makes true on real sockets."""
    with trio.fail_after(timeout_s):
        while not predicate():
            await trio.sleep(0.005)
