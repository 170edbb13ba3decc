from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.aggregate import merge_metrics
from gateway.metrics import GatewayMetrics


def worker(requests: int, version: int, expiry: float) -> str:
    metrics = GatewayMetrics()
    for _ in range(requests):
        metrics.record_request(
            source_cluster="east",
            destination_cluster="west",
            service="catalog.shop",
            status=200,
            duration_s=0.002,
        )
    metrics.table_version.set(version)
    metrics.svid_expiry.set(expiry)
    metrics.upstream_connections.labels("west", "peer").set(1)
    return generate_latest(metrics.registry).decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_workers_metrics_add_up_and_per_gateway_facts_take_the_minimum() -> None:
    merged = samples(merge_metrics([worker(3, 7, 2000.0), worker(2, 6, 1000.0)]))
    labels = (
        ("destination_cluster", "west"),
        ("destination_service", "catalog.shop"),
        ("response_code", "200"),
        ("source_cluster", "east"),
    )
    assert merged[("isthmus_requests_total", labels)] == 5
    duration = tuple(p for p in labels if p[0] != "response_code")
    assert merged[("isthmus_request_duration_seconds_count", duration)] == 5
    assert (
        merged[
            (
                "isthmus_request_duration_seconds_bucket",
                (*duration[:2], ("le", "0.0025"), duration[2]),
            )
        ]
        == 5
    )
    assert merged[("isthmus_routing_table_version", ())] == 6
    assert merged[("isthmus_svid_expiry_timestamp_seconds", ())] == 1000.0
    conns = (("destination_cluster", "west"), ("kind", "peer"))
    assert merged[("isthmus_upstream_connections", conns)] == 2
    assert not any(name.endswith("_created") for name, _ in merged)
