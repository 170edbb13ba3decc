"""docs/observability.md and examples/grafana-dashboard.json stay true to the registered metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.metrics import MetricWrapperBase

from federation.service.metrics import FederationMetrics
from gateway.metrics import GatewayMetrics

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "observability.md"
GRAFANA = ROOT / "examples" / "grafana-dashboard.json"
_ROW = re.compile(r"^\| `(isthmus_[a-z0-9_]+)` \| (counter|gauge|histogram) \|([^|]*)\|", re.M)


def _metrics() -> dict[str, MetricWrapperBase]:
    """Every metric object of a federation replica and a gateway, by exposed family name."""
    found: dict[str, MetricWrapperBase] = {}
    for owner in (FederationMetrics(), GatewayMetrics()):
        for value in vars(owner).values():
            if isinstance(value, MetricWrapperBase):
                found[value._name] = value
    return found


def _documented_name(metric: MetricWrapperBase) -> str:
    kind = metric._type
    return f"{metric._name}_total" if kind == "counter" else metric._name


def test_every_registered_metric_is_documented_with_its_type_and_labels() -> None:
    rows = {name: (kind, labels) for name, kind, labels in _ROW.findall(DOC.read_text())}
    for metric in _metrics().values():
        name = _documented_name(metric)
        assert name in rows, f"{name} is registered but missing from docs/observability.md"
        kind, labels = rows[name]
        assert kind == metric._type, f"{name}: documented as {kind}, registered as {metric._type}"
        documented = set(re.findall(r"`([a-z_]+)`", labels))
        assert set(metric._labelnames) <= documented, f"{name}: labels {metric._labelnames}"


def test_the_doc_lists_no_metric_that_does_not_exist() -> None:
    registered = {_documented_name(m) for m in _metrics().values()}
    documented = {name for name, _, _ in _ROW.findall(DOC.read_text())}
    assert documented <= registered, documented - registered


def _exposed_names() -> set[str]:
    names: set[str] = set()
    for metric in _metrics().values():
        base = metric._name
        if metric._type == "counter":
            names |= {f"{base}_total", f"{base}_created"}
        elif metric._type == "histogram":
            names |= {f"{base}_bucket", f"{base}_sum", f"{base}_count"}
        else:
            names.add(base)
    return names


def _queries(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k in ("expr", "definition") and isinstance(v, str)]
        return found + [q for value in node.values() for q in _queries(value)]
    if isinstance(node, list):
        return [q for item in node for q in _queries(item)]
    return []


def test_the_grafana_dashboard_is_json_and_uses_only_real_metrics() -> None:
    dashboard = json.loads(GRAFANA.read_text())
    queries = _queries(dashboard)
    assert len(queries) >= 10
    used = {name for query in queries for name in re.findall(r"isthmus_[a-z0-9_]+", query)}
    assert used <= _exposed_names(), used - _exposed_names()
    wanted = {
        "isthmus_requests_total",
        "isthmus_request_duration_seconds_bucket",
        "isthmus_outlier_ejections_total",
        "isthmus_retries_total",
        "isthmus_federation_clusters",
        "isthmus_federation_push_to_ack_seconds_bucket",
    }
    assert wanted <= used, wanted - used
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
