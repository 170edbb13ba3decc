"""The engine's maintenance loop: active ``/readyz`` probes of every peer gateway and
expiry of outlier ejections, once per interval, reported to the observer."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from proxy.engine.observer import UpstreamEvent
from proxy.routes.table import Endpoint

if TYPE_CHECKING:
    from proxy.engine.engine import ForwardingEngine


def peer_endpoints(engine: ForwardingEngine) -> dict[str, Endpoint]:
    """Every peer gateway endpoint of the current table, by key."""
    return {
        ep.key: ep
        for route in engine.table.routes.values()
        for group in route.priorities
        for ep in group.endpoints
        if ep.kind == "peer"
    }


async def _probe(engine: ForwardingEngine, ep: Endpoint) -> None:
    ok = await engine.upstream.probe(ep)
    change = engine.state.record_probe(ep.key, ok, trio.current_time())
    if change is not None:
        kind = "healthy" if change.healthy else "unhealthy"
        engine.observer.on_upstream_event(
            UpstreamEvent(kind, "", ep.key, ep.locality.cluster, "readyz probe")
        )


async def check_once(engine: ForwardingEngine) -> None:
    """Probe every peer concurrently (each bounded by the pools' probe timeout), then report
    ejections that expired."""
    async with trio.open_nursery() as nursery:
        for ep in peer_endpoints(engine).values():
            nursery.start_soon(_probe, engine, ep)
    for service, event in engine.state.tick(trio.current_time()):
        engine.observer.on_upstream_event(
            UpstreamEvent("unejected", service, str(event.key), "", "ejection expired")
        )


async def run_health_checks(
    engine: ForwardingEngine,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Never returns: one :func:`check_once` per ``state.health.settings.interval_s``."""
    task_status.started()
    interval = engine.state.health.settings.interval_s
    while True:
        deadline = trio.current_time() + interval
        await check_once(engine)
        await trio.sleep_until(deadline)
