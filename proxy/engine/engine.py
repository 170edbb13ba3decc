"""The forwarding engine: route, police, inject faults, balance, forward, retry, stream back.

One :class:`ForwardingEngine` per worker process serves every listener; it implements the
listeners' :class:`~proxy.listeners.RequestHandler`. The routing table is swapped whole with
:meth:`ForwardingEngine.swap_table` (in-flight requests keep the route they matched).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from typing import Protocol

import trio

from proxy.clusters.state import UpstreamState
from proxy.engine.context import Outcome, TableView
from proxy.engine.forward import forward
from proxy.engine.observer import NullObserver, Observer, RequestRecord
from proxy.engine.replies import reply
from proxy.engine.tunnels import TunnelRequest, serve_tunnel
from proxy.listeners.exchange import Exchange
from proxy.loadbalancer.picker import NO_ENDPOINTS, LoadBalancer
from proxy.routes.fault import decide_fault
from proxy.routes.headers import Headers, local_reply, not_found_response
from proxy.routes.table import Endpoint, Route, RoutingTable
from proxy.upstream.models import UpstreamRequest, UpstreamResponse


class UpstreamClient(Protocol):
    """What the engine needs from :class:`proxy.upstream.UpstreamPools`."""

    async def request(
        self,
        endpoint: Endpoint,
        req: UpstreamRequest,
        *,
        timeout_s: float | None = None,
        now: float | None = None,
    ) -> UpstreamResponse: ...

    async def open_tunnel(
        self, endpoint: Endpoint, authority: str
    ) -> trio.abc.HalfCloseableStream: ...

    def retain(self, endpoints: Iterable[Endpoint]) -> None: ...

    async def probe(self, endpoint: Endpoint, path: bytes = b"/readyz") -> bool: ...


class ForwardingEngine:
    """Answers every exchange a listener hands it (see :meth:`handle`).

    ``upstream`` performs the I/O to endpoints; ``state`` holds in-flight counts, outlier
    and health state and retry budgets (shared with the gateway's prober); ``observer``
    receives records; ``rng`` drives load balancing, fault injection and trace ids.
    """

    def __init__(
        self,
        table: RoutingTable,
        *,
        upstream: UpstreamClient,
        state: UpstreamState | None = None,
        observer: Observer | None = None,
        rng: random.Random | None = None,
        replay_limit: int = 64 * 1024,
        probe_authority: bytes = b"isthmus-gateway",
    ) -> None:
        self._view = TableView(table)
        self.upstream = upstream
        self.state = state if state is not None else UpstreamState()
        self.observer: Observer = observer if observer is not None else NullObserver()
        self.rng = rng if rng is not None else random.Random()  # noqa: S311 - not crypto
        self.replay_limit = replay_limit
        self.probe_authority = probe_authority
        # Answered to peer gateways' ``/readyz`` probes on the inbound listener; the gateway
        # sets it False before draining so peers move traffic away first.
        self.ready = True
        self.outbound_balancer = LoadBalancer()
        self.inbound_balancer = LoadBalancer()

    @property
    def table(self) -> RoutingTable:
        return self._view.table

    def swap_table(self, table: RoutingTable) -> None:
        """Install a new table; established connections and in-flight requests continue.
        Upstream state of endpoints and services that disappeared is dropped."""
        self._view = TableView(table)
        endpoints = [
            ep
            for route in table.routes.values()
            for group in route.priorities
            for ep in group.endpoints
        ]
        self.state.retain({ep.key for ep in endpoints}, table.routes.keys())
        self.upstream.retain(endpoints)
        self.outbound_balancer.retain(set(table.routes))
        self.inbound_balancer.retain(set(table.routes))

    async def handle(self, exchange: Exchange) -> None:
        """Answer ``exchange`` completely; raises only
        :class:`~proxy.listeners.DownstreamGone` (the client left). One coroutine for the
        routing part (no nested ``_handle`` frame per request); the clock read here also
        gives the route deadline and the first attempt's time (no checkpoint between)."""
        now = started = trio.current_time()
        wall = time.time()
        out = Outcome()
        try:
            down = exchange.downstream
            inbound = down.listener == "inbound"
            if inbound and exchange.authority == self.probe_authority:
                await self._answer_probe(exchange, out)
                return
            connect = exchange.method == b"CONNECT"
            target = exchange.path if connect else exchange.authority
            service, route = self._view.match_raw(target, inbound=inbound)
            out.service = service or ""
            if route is None:
                name = service or exchange.authority.decode("latin-1")
                await reply(exchange, out, not_found_response(name))
                return
            if inbound and not self._serves_peer(exchange, route):
                await reply(exchange, out, self._refusal(route, down.peer_cluster))
                return
            if route.fault is not None:
                if await self._inject_fault(exchange, route, out):
                    return
                now = trio.current_time()  # a fault's delay passed
            balancer = self.inbound_balancer if inbound else self.outbound_balancer
            if connect:
                tunnel = TunnelRequest(exchange, route, target.decode("latin-1"), balancer)
                await serve_tunnel(self, tunnel, out)
                return
            await forward(self, exchange, route, balancer, out, now=now)
        finally:
            self._report(exchange, out, wall, trio.current_time() - started)

    @staticmethod
    def _serves_peer(exchange: Exchange, route: Route) -> bool:
        """Whether a peer gateway's request may go on along ``route``."""
        return bool(route.priorities or route.tcp_targets) and route.allows_source(
            exchange.downstream.peer_cluster or ""
        )

    @staticmethod
    def _refusal(route: Route, peer_cluster: str | None) -> tuple[int, Headers, bytes]:
        """The local reply to a peer's request that :meth:`_serves_peer` refused."""
        if not route.priorities and not route.tcp_targets:
            # Nothing of the service runs here: the caller's snapshot is ahead of ours (a
            # replica placed here that our snapshot does not show yet) or behind it. A 503
            # with a reason is retried at another cluster; a 403 would be final.
            message = f"service {route.service!r} has no endpoint in this cluster"
            return local_reply(503, NO_ENDPOINTS, message)
        message = f"cluster {peer_cluster!r} may not call service {route.service!r}"
        return local_reply(403, "source_not_allowed", message)

    async def _inject_fault(self, exchange: Exchange, route: Route, out: Outcome) -> bool:
        """Apply the route's fault injection; True when the request was answered (aborted)."""
        fault = decide_fault(route.fault, self.rng)
        if fault.delay_s > 0:
            await trio.sleep(fault.delay_s)
        if fault.abort_status is not None:
            msg = f"fault injected for service {route.service!r}"
            await reply(exchange, out, local_reply(fault.abort_status, "fault_injected", msg))
            return True
        return False

    async def _answer_probe(self, exchange: Exchange, out: Outcome) -> None:
        if exchange.path == b"/readyz" and self.ready:
            await reply(exchange, out, (200, [(b"content-length", b"6")], b"ready\n"))
        elif exchange.path == b"/readyz":
            await reply(exchange, out, local_reply(503, "draining", "this gateway is draining"))
        else:
            await reply(exchange, out, local_reply(404, "unknown_path", "only /readyz here"))

    def _report(self, exchange: Exchange, out: Outcome, wall: float, duration: float) -> None:
        down = exchange.downstream
        inbound = down.listener == "inbound"
        source = (down.peer_cluster or "") if inbound else self.table.local_cluster
        # positional (the field order of RequestRecord): this runs once per request
        self.observer.on_request_done(
            RequestRecord(
                wall,
                down.listener,
                source,
                down.peer_identity,
                down.remote,
                exchange.method.decode("latin-1"),
                exchange.authority.decode("latin-1"),
                exchange.path.decode("latin-1"),
                out.service,
                out.destination_cluster,
                out.endpoint,
                out.status,
                out.reason,
                duration,
                out.retries,
                out.bytes_received,
                out.bytes_sent,
                out.trace_id,
            )
        )
