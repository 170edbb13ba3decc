"""Active peer probes and the once-a-second maintenance tick.

Every ``config.probe_interval_s`` the engine's :func:`proxy.engine.check_once` probes each peer
gateway of the active table (``GET /readyz`` over its mTLS connection), all peers concurrently,
feeds the results to the health checker and expires outlier ejections: a dead or draining
cluster leaves every service's rotation within about two probe periods, with no user traffic
needed, and comes back after one good probe. The gateway then publishes peer health (status,
``isthmus_peer_healthy``) and refreshes the upstream-connection gauges.
"""

from __future__ import annotations

import logging
from collections import defaultdict

import trio

from gateway.config import GatewayConfig
from gateway.identity import GatewayIdentity
from gateway.metrics import GatewayMetrics
from gateway.status import GatewayStatus
from proxy.engine import ForwardingEngine, check_once
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


def publish_peer_health(
    engine: ForwardingEngine, status: GatewayStatus, metrics: GatewayMetrics
) -> None:
    """Copy the engine's view of peer health into the status and the ``isthmus_peer_healthy``
    gauge (a cluster is healthy when any of its gateway addresses is)."""
    health: dict[str, bool] = {}
    by_cluster: dict[str, bool] = defaultdict(bool)
    for endpoint in peer_endpoints(engine.table):
        ok = engine.state.health.is_healthy(endpoint.key)
        health[endpoint.key] = ok
        by_cluster[endpoint.locality.cluster] |= ok
    status.peer_health = health
    status.probe_rounds += 1
    for cluster, ok in by_cluster.items():
        metrics.peer_healthy.labels(cluster).set(1 if ok else 0)


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


def live_view(engine: ForwardingEngine, now: float) -> dict[str, object]:
    """What the outbound side would do right now, per service and priority level: the share of
    traffic each level gets, whether it is in panic, and each endpoint's health (``/config``)."""
    services: dict[str, object] = {}
    for name, route in sorted(engine.table.routes.items()):
        loads, panic = engine.outbound_balancer.priority_loads(route, engine.state, now)
        services[name] = [
            {
                "load_percent": round(load, 2),
                "panic": in_panic,
                "endpoints": [
                    {
                        "key": ep.key,
                        "cluster": ep.locality.cluster,
                        "healthy": engine.state.is_healthy(name, ep.key, now),
                    }
                    for ep in group.endpoints
                ],
            }
            for group, load, in_panic in zip(route.priorities, loads, panic, strict=True)
        ]
    return {"services": services}


async def run_maintenance(
    config: GatewayConfig,
    *,
    engine: ForwardingEngine,
    pools: UpstreamPools,
    status: GatewayStatus,
    metrics: GatewayMetrics,
    identity: GatewayIdentity,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Probe peers, expire ejections and refresh gauges every ``config.probe_interval_s``.
    Never returns; cancel to stop. A round that overruns starts the next one at once."""
    interval = config.probe_interval_s
    task_status.started()
    while True:
        deadline = trio.current_time() + interval
        try:
            await check_once(engine)
        except Exception:  # a bug in one probe round must not take the data plane down
            log.exception("peer probe round failed; probing again in %.1f s", interval)
        publish_peer_health(engine, status, metrics)
        metrics.svid_expiry.set(identity.svid.not_after.timestamp())
        _connection_gauges(engine, pools, metrics)
        await trio.sleep_until(deadline)
