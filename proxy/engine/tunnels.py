"""CONNECT tunnels: pick a destination for ``service.ns.global:port``, open a byte stream to
it, answer 200 and pump.

A local destination (endpoint ``kind != "peer"``) is reached by TCP at the route's
``tcp_targets`` entry with the requested port (else the first); a peer gateway through an
HTTP/2 CONNECT stream on the peer connection (``UpstreamClient.open_tunnel``). Connect
failures are retried on other endpoints (nothing was sent yet) within ``route.retry.attempts``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from proxy.engine.context import Outcome
from proxy.engine.observer import TunnelRecord, UpstreamEvent
from proxy.engine.replies import reply
from proxy.errors import TunnelRefused, UpstreamError
from proxy.listeners.exchange import Exchange
from proxy.loadbalancer.picker import LoadBalancer
from proxy.outlier.detector import Outcome as AttemptOutcome
from proxy.routes.headers import local_reply, unavailable_response
from proxy.routes.table import Endpoint, Route
from proxy.tunnel.pump import PumpCounts, TunnelIdleTimeout, pump
from proxy.tunnel.targets import TunnelTargetMissing, tcp_target

if TYPE_CHECKING:
    from proxy.engine.engine import ForwardingEngine


@dataclass(slots=True)
class TunnelRequest:
    exchange: Exchange
    route: Route
    target: str
    balancer: LoadBalancer


async def _open(
    engine: ForwardingEngine, route: Route, ep: Endpoint, target: str
) -> trio.abc.HalfCloseableStream:
    if ep.kind == "peer":
        return await engine.upstream.open_tunnel(ep, target)
    host, port = tcp_target(route, target)
    try:
        return await trio.open_tcp_stream(host, port)
    except OSError as err:
        raise UpstreamError(f"tunnel to {host}:{port} failed: {err}", endpoint=ep.key) from err


async def _connect(
    engine: ForwardingEngine, req: TunnelRequest, out: Outcome
) -> trio.abc.HalfCloseableStream | None:
    """Open the upstream side, trying other endpoints after a connect failure (nothing was
    sent yet). ``None`` means a local reply was sent instead."""
    route = req.route
    tried: set[str] = set()
    for attempt in range(max(1, route.retry.attempts)):
        now = trio.current_time()
        pick = req.balancer.pick(route, engine.state, now, engine.rng, exclude=frozenset(tried))
        ep = pick.endpoint
        if ep is None:
            break
        tried.add(ep.key)
        out.endpoint, out.destination_cluster, out.retries = ep.key, ep.locality.cluster, attempt
        try:
            with trio.fail_after(route.retry.per_try_timeout_s):
                stream = await _open(engine, route, ep, req.target)
        except TunnelTargetMissing as err:
            await reply(req.exchange, out, local_reply(503, "no_tcp_target", str(err)))
            return None
        except TunnelRefused as err:
            if err.status != 503:  # the peer answered (e.g. 403): relay its verdict
                msg = f"peer gateway refused the tunnel to {req.target} ({err.status})"
                await reply(req.exchange, out, local_reply(err.status, "peer_refused", msg))
                return None
            _failed(engine, route, ep, str(err), now)
        except (UpstreamError, trio.TooSlowError) as err:
            _failed(engine, route, ep, str(err) or "connect timeout", now)
        else:
            engine.state.record(route, ep, AttemptOutcome.SUCCESS, now)
            return stream
    await reply(req.exchange, out, unavailable_response("tunnel_connect_failure", route.service))
    return None


def _failed(engine: ForwardingEngine, route: Route, ep: Endpoint, why: str, now: float) -> None:
    observer = engine.observer
    observer.on_upstream_event(
        UpstreamEvent("failure", route.service, ep.key, ep.locality.cluster, why)
    )
    event = engine.state.record(route, ep, AttemptOutcome.CONNECT_FAILURE, now)
    if event is not None:
        observer.on_upstream_event(
            UpstreamEvent(
                "ejected", route.service, ep.key, ep.locality.cluster, event.reason, event.until
            )
        )


async def serve_tunnel(engine: ForwardingEngine, req: TunnelRequest, out: Outcome) -> None:
    """Answer a CONNECT exchange: 200 and a byte pump, or a local error reply. The tunnel
    ends when both sides finished, one broke (``reason="tunnel_broken"``) or nothing moved
    for the listener's ``tunnel_idle_timeout_s`` (``reason="tunnel_idle_timeout"``)."""
    started, wall = trio.current_time(), time.time()
    upstream = await _connect(engine, req, out)
    counts = PumpCounts()
    try:
        if upstream is not None:
            engine.state.begin(out.endpoint)  # least-request counts open tunnels too
            try:
                out.status = 200
                client = await req.exchange.accept_tunnel()
                idle_s = req.exchange.downstream.tunnel_idle_timeout_s
                await pump(client, upstream, counts, idle_timeout_s=idle_s)
            except trio.BrokenResourceError:
                out.reason = "tunnel_broken"
            except TunnelIdleTimeout:
                # Returning ends both sides: the listener closes the client connection
                # (HTTP/1.1) or resets its stream (HTTP/2); closing ``upstream`` resets the
                # peer stream or closes the TCP connection.
                out.reason = "tunnel_idle_timeout"
            finally:
                engine.state.end(out.endpoint)
                await trio.aclose_forcefully(upstream)
    finally:
        _report(
            engine,
            req,
            out=out,
            counts=counts,
            wall=wall,
            duration=trio.current_time() - started,
        )


def _report(
    engine: ForwardingEngine,
    req: TunnelRequest,
    *,
    out: Outcome,
    counts: PumpCounts,
    wall: float,
    duration: float,
) -> None:
    out.bytes_received, out.bytes_sent = counts.up, counts.down
    down = req.exchange.downstream
    engine.observer.on_tunnel_done(
        TunnelRecord(
            time=wall,
            listener=down.listener,
            source_cluster=(down.peer_cluster or "")
            if down.listener == "inbound"
            else engine.table.local_cluster,
            source_identity=down.peer_identity,
            service=req.route.service,
            target=req.target,
            destination_cluster=out.destination_cluster,
            endpoint=out.endpoint,
            status=out.status,
            reason=out.reason,
            duration_s=duration,
            bytes_up=counts.up,
            bytes_down=counts.down,
        )
    )
