import json
import logging

import pytest
from prometheus_client import generate_latest

from gateway.metrics import GatewayMetrics
from gateway.observe import GatewayObserver, access_line
from proxy.engine import RequestRecord, TunnelRecord, UpstreamEvent


def record(**changes: object) -> RequestRecord:
    base = dict(
        time=1_764_100_000.25,
        listener="outbound",
        source_cluster="east",
        source_identity=None,
        remote="127.0.0.1:5000",
        method="GET",
        authority="catalog.shop.global",
        path="/x",
        service="catalog.shop",
        destination_cluster="west",
        endpoint="peer:west:10.0.0.1:15443",
        status=200,
        reason="",
        duration_s=0.0125,
        retries=1,
        bytes_received=0,
        bytes_sent=42,
    )
    base.update(changes)
    return RequestRecord(**base)  # type: ignore[arg-type]


def test_access_line_has_the_documented_fields() -> None:
    line = json.loads(access_line(record()))
    assert line["time"] == "2025-11-25T19:46:40.250Z"
    assert (line["service"], line["cluster"], line["status"]) == ("catalog.shop", "west", 200)
    assert (line["duration_ms"], line["retries"], line["reason"]) == (12.5, 1, None)
    assert line["source_identity"] is None and line["source_cluster"] == "east"


def test_observer_counts_requests_retries_ejections_and_tunnel_bytes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="isthmus.access")
    metrics = GatewayMetrics()
    observer = GatewayObserver(metrics, access_log=True)
    observer.on_request_done(record())
    observer.on_request_done(record(status=404, service="", destination_cluster=""))
    observer.on_upstream_event(UpstreamEvent("retry", "catalog.shop", "peer:west", "west", "reset"))
    observer.on_upstream_event(UpstreamEvent("ejected", "catalog.shop", "peer:west", "west", "5xx"))
    observer.on_upstream_event(UpstreamEvent("budget_exhausted", "catalog.shop", "", ""))
    observer.on_tunnel_done(
        TunnelRecord(
            1.0,
            "outbound",
            "east",
            None,
            "db.shop",
            "db.shop.global:5432",
            "west",
            "peer:west",
            200,
            "",
            1.0,
            100,
            2000,
        )
    )
    text = generate_latest(metrics.registry).decode()
    assert 'destination_cluster="none",destination_service="unknown",response_code="404"' in text
    assert 'isthmus_retries_total{destination_service="catalog.shop",reason="reset"} 1.0' in text
    assert (
        'isthmus_outlier_ejections_total{destination_cluster="west",endpoint="peer:west"} 1.0'
        in text
    )
    assert 'isthmus_retry_budget_exhausted_total{destination_service="catalog.shop"} 1.0' in text
    assert (
        'isthmus_tunnel_bytes_total{destination_service="db.shop",direction="downstream"} 2000.0'
        in text
    )
    access = [r for r in caplog.records if r.name == "isthmus.access"]
    assert len(access) == 3


def test_peer_probes_are_not_counted_as_traffic(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="isthmus.access")
    metrics = GatewayMetrics()
    probe = record(listener="inbound", authority="isthmus-gateway", path="/readyz", service="")
    GatewayObserver(metrics, access_log=True).on_request_done(probe)
    assert "isthmus_requests_total{" not in generate_latest(metrics.registry).decode()
    assert caplog.records == []


def test_access_log_can_be_turned_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="isthmus.access")
    GatewayObserver(GatewayMetrics(), access_log=False).on_request_done(record())
    assert [r for r in caplog.records if r.name == "isthmus.access"] == []


def test_observer_splits_own_backends_load_from_outbound_links() -> None:
    observer = GatewayObserver(GatewayMetrics(), access_log=False, own_cluster="east")
    observer.on_request_done(record())  # a local client -> west: an outbound link
    served = record(listener="inbound", destination_cluster="east", endpoint="local:1.2.3.4:80")
    observer.on_request_done(served)  # a peer's request served by east's own backend
    observer.on_request_done(record(status=404, service="", destination_cluster=""))
    load = observer.load.sample(["catalog.shop"], now=0.0)["catalog.shop"]
    assert load.latency_ewma_ms == pytest.approx(12.5)  # the inbound request west served
    links = observer.links.sample(observer.links.seen(), now=0.0)
    assert list(links) == ["west/catalog.shop"]


def _samples(registry: object) -> list[str]:
    text = generate_latest(registry).decode()  # type: ignore[arg-type]
    return [
        line for line in text.splitlines() if "isthmus_request" in line and "_created" not in line
    ]


def test_request_metrics_export_exactly_what_prometheus_client_would_count() -> None:
    """record_request counts in plain ints and flushes at scrape time: the exposition must be
    the one of one labels().inc() and labels().observe() per request."""
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from gateway.metrics import DURATION_BUCKETS

    reference = CollectorRegistry()
    requests = Counter(
        "isthmus_requests",
        "Requests handled, by source and destination and response code.",
        ["source_cluster", "destination_cluster", "destination_service", "response_code"],
        registry=reference,
    )
    duration = Histogram(
        "isthmus_request_duration_seconds",
        "Time from request headers to the end of the response.",
        ["source_cluster", "destination_cluster", "destination_service"],
        buckets=DURATION_BUCKETS,
        registry=reference,
    )
    metrics = GatewayMetrics()
    cases = [(200, 0.0005), (200, 0.0007), (503, 0.01), (200, 31.0), (200, 0.0), (404, 2.5)]
    for round_ in range(2):  # a scrape between rounds: flushed counts add up
        for status, seconds in cases:
            metrics.record_request(
                source_cluster="east",
                destination_cluster="west",
                service="catalog.shop",
                status=status,
                duration_s=seconds,
            )
            requests.labels("east", "west", "catalog.shop", str(status)).inc()
            duration.labels("east", "west", "catalog.shop").observe(seconds)
        assert _samples(metrics.registry) == _samples(reference), f"round {round_}"
