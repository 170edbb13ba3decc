"""Per-service settings survive the federation: the exporting cluster's retry, fault, timeout,
CONNECT targets and allowed sources reach every cluster routing to the service, and a cluster's
own route keeps every reported endpoint (healthy or not) so outlier state is not reset."""

from __future__ import annotations

from pathlib import Path

import trio

from federation.model import EndpointHealth, ServiceHealth
from federation.model.routing import FaultPolicy, RetryPolicy, ServiceRoute
from federation.service.server import RunningFederation
from tests.integration.federation.test_client_link import Gateway, wait_until

RETRY = RetryPolicy(attempts=4, per_try_timeout_s=0.5)
FAULT = FaultPolicy(delay_ms=5, delay_percent=10.0)
DB = ServiceHealth(
    name="db.shop",
    tcp_endpoints=(EndpointHealth(address="127.0.0.1:5432"),),
    allowed_sources=("aws",),
    timeout_s=42.0,
    retry=RETRY,
    fault=FAULT,
)
WEB = ServiceHealth(
    name="web.shop",
    endpoints=(
        EndpointHealth(address="127.0.0.1:8081"),
        EndpointHealth(address="127.0.0.1:8082", healthy=False),
    ),
    allowed_sources=("*",),
    timeout_s=7.0,
)


def route_of(gw: Gateway, name: str) -> ServiceRoute | None:
    if not gw.applied:
        return None
    return next((s for s in gw.applied[-1][0].routing.services if s.name == name), None)


async def test_settings_and_tcp_targets_reach_every_routing_cluster(
    federation: RunningFederation, tmp_path: Path
) -> None:
    aws = Gateway("aws", tmp_path)
    gcp = Gateway("gcp", tmp_path, services=(DB, WEB))
    for gw in (aws, gcp):
        await gw.join(await federation.service.create_join_token(gw.name))
    async with aws.client() as c1, gcp.client() as c2, trio.open_nursery() as nursery:
        for gw, client in ((aws, c1), (gcp, c2)):
            await nursery.start(gw.link(client).run)
        await wait_until(lambda: route_of(aws, "db.shop") is not None)
        await wait_until(lambda: route_of(gcp, "web.shop") is not None)
        remote_db = route_of(aws, "db.shop")
        assert remote_db is not None
        assert [level.weights for level in remote_db.priorities] == [{"gcp": 1}]
        assert (remote_db.timeout_s, remote_db.retry, remote_db.fault) == (42.0, RETRY, FAULT)
        own_db = route_of(gcp, "db.shop")
        assert own_db is not None
        assert own_db.tcp_endpoints == ("127.0.0.1:5432",)  # CONNECT can reach its target
        assert own_db.allowed_sources == ("aws",)
        assert (own_db.timeout_s, own_db.retry, own_db.fault) == (42.0, RETRY, FAULT)
        remote_web = route_of(aws, "web.shop")
        assert remote_web is not None and remote_web.timeout_s == 7.0
        own_web = route_of(gcp, "web.shop")
        assert own_web is not None
        assert [ep.address for ep in own_web.local_endpoints] == [
            "127.0.0.1:8081",
            "127.0.0.1:8082",  # unhealthy, still listed: the gateway's outlier state survives
        ]
        nursery.cancel_scope.cancel()
