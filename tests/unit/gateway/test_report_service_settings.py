"""The report carries each exported service's routing.yaml settings (retry, fault, timeout,
CONNECT targets) so the federation can hand them to every cluster that routes to it."""

from __future__ import annotations

from federation.model import LocalEndpoint, Locality, RoutingModel, ServiceRoute
from federation.model.routing import FaultPolicy, RetryPolicy
from gateway.report import build_health_report


def test_report_carries_settings_and_tcp_targets_separately() -> None:
    retry = RetryPolicy(attempts=3)
    fault = FaultPolicy(abort_status=503, abort_percent=1.0)
    model = RoutingModel(
        version=1,
        cluster="east",
        trust_domain="east.isthmus.test",
        locality=Locality(cloud="aws", region="us-east-1"),
        services=(
            ServiceRoute(
                name="db.shop",
                tcp_endpoints=("127.0.0.1:5432",),
                timeout_s=30.0,
                retry=retry,
                fault=fault,
                allowed_sources=("west",),
            ),
            ServiceRoute(name="web.shop", local_endpoints=(LocalEndpoint(address="127.0.0.1:80"),)),
        ),
    )
    report = build_health_report(
        model,
        sequence=1,
        sent_at=0.0,
        healthy=lambda service, key: key != "local:127.0.0.1:5432",
        in_flight={},
        load={},
        peers={},
    )
    db, web = report.services
    assert db.endpoints == () and [ep.address for ep in db.tcp_endpoints] == ["127.0.0.1:5432"]
    assert not db.tcp_endpoints[0].healthy
    assert (db.timeout_s, db.retry, db.fault, db.allowed_sources) == (30.0, retry, fault, ("west",))
    assert web.tcp_endpoints == () and web.endpoints[0].address == "127.0.0.1:80"
    assert web.timeout_s == 15.0 and web.fault is None
