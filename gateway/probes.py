"""Active peer probes and the once-a-second maintenance tick.

Every ``config.probe_interval_s`` the gateway probes each peer gateway endpoint of the active
table (``GET /readyz`` over its mTLS connection, D2's :meth:`UpstreamPools.probe`), all peers
concurrently, and feeds the results to the engine's health checker (C's
:meth:`UpstreamState.record_probe`): a dead or draining cluster leaves every service's
rotation within about two probe periods, with no user traffic needed, and comes back after
one good probe. The same tick expires outlier ejections (:meth:`UpstreamState.tick`) and
refreshes the upstream-connection gauges.
"""

from __future__ import annotations

import logging
from collections import defaultdict

import trio

from gateway.config import GatewayConfig
from gateway.metrics import GatewayMetrics
from gateway.status import GatewayStatus
from proxy.engine import ForwardingEngine
from proxy.routes import Endpoint, RoutingTable
from proxy.upstream import UpstreamPools

log = logging.getLogger(__name__)


def peer_endpoints(table: RoutingTable) -> list[Endpoint]:
    """Distinct peer-gateway endpoints (by key) of a table."""
    seen: dict[str, Endpoint] = {}
    for route in table.routes.values():
        for group in route.priorities:
            for endpoint in group.endpoints:
                if endpoint.kind == "peer":
                    seen.setdefault(endpoint.key, endpoint)
    return list(seen.values())


async def probe_peers(
    engine: ForwardingEngine,
    pools: UpstreamPools,
    status: GatewayStatus,
    metrics: GatewayMetrics,
    timeout_s: float,
) -> dict[str, bool]:
    """Probe every peer endpoint once, concurrently; returns ``key -> ok``."""
    results: dict[str, bool] = {}
    peers = peer_endpoints(engine.table)

    async def one(endpoint: Endpoint) -> None:
        ok = False
        with trio.move_on_after(timeout_s):
            ok = await pools.probe(endpoint)
        results[endpoint.key] = ok

    async with trio.open_nursery() as nursery:
        for endpoint in peers:
            nursery.start_soon(one, endpoint)
    now = trio.current_time()
    by_cluster: dict[str, bool] = defaultdict(bool)
    for endpoint in peers:
        ok = results[endpoint.key]
        by_cluster[endpoint.locality.cluster] |= ok
        change = engine.state.record_probe(endpoint.key, ok, now)
        if change is not None:
            word = "healthy" if change.healthy else "UNHEALTHY"
            log.warning("peer gateway %s is %s", endpoint.key, word)
    status.peer_health = dict(results)
    for cluster, ok in by_cluster.items():
        metrics.peer_healthy.labels(cluster).set(1 if ok else 0)
    return results


def _expire_ejections(engine: ForwardingEngine) -> None:
    for service, event in engine.state.tick(trio.current_time()):
        log.info("un-ejected %s for service %s", event, service)


def _connection_gauges(
    engine: ForwardingEngine, pools: UpstreamPools, metrics: GatewayMetrics
) -> None:
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for route in engine.table.routes.values():
        for group in route.priorities:
            for endpoint in group.endpoints:
                totals[(endpoint.locality.cluster, endpoint.kind)] = 0
    seen: set[str] = set()
    for route in engine.table.routes.values():
        for group in route.priorities:
            for endpoint in group.endpoints:
                if endpoint.key in seen:
                    continue
                seen.add(endpoint.key)
                key = (endpoint.locality.cluster, endpoint.kind)
                totals[key] += pools.connection_count(endpoint)
    for (cluster, kind), count in totals.items():
        metrics.upstream_connections.labels(cluster, kind).set(count)


async def run_maintenance(
    engine: ForwardingEngine,
    pools: UpstreamPools,
    status: GatewayStatus,
    metrics: GatewayMetrics,
    config: GatewayConfig,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Probe peers, expire ejections and refresh gauges every ``config.probe_interval_s``.
    Never returns; cancel to stop. A round that overruns starts the next one at once."""
    interval = config.probe_interval_s
    task_status.started()
    deadline = trio.current_time()
    while True:
        deadline += interval
        await probe_peers(engine, pools, status, metrics, timeout_s=interval)
        _expire_ejections(engine)
        _connection_gauges(engine, pools, metrics)
        now = trio.current_time()
        deadline = max(deadline, now)
        await trio.sleep_until(deadline)
