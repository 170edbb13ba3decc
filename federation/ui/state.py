"""The dashboard's view of the federation, as one JSON-ready document (pure).

:func:`build_state` turns what the store holds (clusters, latest reports, snapshots, placement
decisions, bundle history, events) plus the lease verdicts of
:meth:`~federation.service.core.FederationService.status` into the document served at
``GET /v1/ui/state`` and pushed on ``GET /v1/ui/stream``. It never reads the clock or the store:
:mod:`federation.ui.gather` does the I/O. Documents it cannot parse (a report or decision of a
newer format) are skipped field by field, never fatal: the dashboard shows what it can.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from federation.model.api import ClusterStatus, FederationStatus, HealthReport
from federation.store import BundleRecord, ClusterRecord, DecisionRecord, EventRecord

#: How many bundle versions per trust domain and events the document carries.
HISTORY_LIMIT = 5
EVENTS_LIMIT = 100


@dataclass(frozen=True)
class StateInputs:
    """Everything one dashboard document is built from (read by :mod:`federation.ui.gather`)."""

    now: float
    status: FederationStatus
    clusters: Sequence[ClusterRecord]
    reports: Mapping[str, HealthReport]
    snapshots: Mapping[str, str] = field(default_factory=dict)
    decisions: Sequence[DecisionRecord] = ()
    bundle_history: Mapping[str, Sequence[BundleRecord]] = field(default_factory=dict)
    events: Sequence[EventRecord] = ()


def build_state(inputs: StateInputs) -> dict[str, Any]:
    """The dashboard document: ``clusters``, ``links``, ``placement``, ``trust``, ``events``."""
    rows = {row.cluster: row for row in inputs.status.clusters}
    live = {name for name, row in rows.items() if row.lease == "healthy"}
    return {
        "now": inputs.now,
        "clusters": [
            _cluster(c, rows.get(c.name), inputs.reports.get(c.name)) for c in inputs.clusters
        ],
        "links": _links(inputs.reports, live, set(rows)),
        "placement": _placement(inputs, live),
        "trust": _trust(inputs, rows),
        "events": [_event(e) for e in list(inputs.events)[-EVENTS_LIMIT:]],
    }


def _cluster(
    record: ClusterRecord, row: ClusterStatus | None, report: HealthReport | None
) -> dict[str, Any]:
    fresh = row is not None and row.lease == "healthy"
    services = [
        {
            "name": svc.name,
            "endpoints": len(svc.endpoints) + len(svc.tcp_endpoints),
            "healthy_endpoints": len(svc.healthy_endpoints),
            "request_rate": svc.request_rate if fresh else 0.0,
            "error_rate": svc.error_rate if fresh else 0.0,
            "latency_ms": svc.latency_ewma_ms if fresh else 0.0,
        }
        for svc in (report.services if report is not None else ())
    ]
    return {
        "name": record.name,
        "cloud": record.locality.cloud,
        "region": record.locality.region,
        "zone": record.locality.zone,
        "trust_domain": record.trust_domain,
        "gateways": list(record.gateway_addresses),
        "state": row.lease if row is not None else "pending",
        "last_report_age_s": None if row is None else row.last_report_age_s,
        "unreachable_from": [] if row is None else list(row.unreachable_from),
        "snapshot_version": None if row is None else row.snapshot_version,
        "acked_version": None if row is None else row.acked_version,
        "nack_error": "" if row is None else row.nack_error,
        "services": services,
    }


def _links(
    reports: Mapping[str, HealthReport], live: set[str], known: set[str]
) -> list[dict[str, Any]]:
    """One entry per (source, destination) seen in a probe or in traffic stats."""
    links: dict[tuple[str, str], dict[str, Any]] = {}

    def entry(source: str, destination: str) -> dict[str, Any]:
        return links.setdefault(
            (source, destination),
            {
                "source": source,
                "destination": destination,
                "probe_ok": None,
                "request_rate": 0.0,
                "error_rate": 0.0,
                "latency_ms": 0.0,
            },
        )

    for source, report in sorted(reports.items()):
        if source not in known:
            continue
        for probe in report.peers:
            if probe.cluster in known:
                entry(source, probe.cluster)["probe_ok"] = probe.ok
        if source not in live:
            continue  # a silent cluster's last numbers are not live traffic
        for stat in report.links:
            if stat.destination not in known:
                continue
            item = entry(source, stat.destination)
            errors = item["error_rate"] * item["request_rate"] + stat.error_rate * stat.request_rate
            item["request_rate"] += stat.request_rate
            item["error_rate"] = errors / item["request_rate"] if item["request_rate"] else 0.0
            item["latency_ms"] = max(item["latency_ms"], stat.latency_ms)
    for (source, destination), item in links.items():
        down = source not in live or destination not in live or item["probe_ok"] is False
        item["state"] = "down" if down else "up"
        if destination not in live:
            item["request_rate"] = 0.0
    return [links[key] for key in sorted(links)]


def _placement(inputs: StateInputs, live: set[str]) -> list[dict[str, Any]]:
    """Per service: replicas per cluster, traffic weights per source cluster, explanation."""
    services: dict[str, dict[str, Any]] = {}

    def entry(name: str) -> dict[str, Any]:
        return services.setdefault(
            name,
            {"name": name, "replicas": {}, "traffic": {}, "explanation": None, "source": "reports"},
        )

    for cluster, report in sorted(inputs.reports.items()):
        for svc in report.services:
            running = len(svc.healthy_endpoints) if cluster in live else 0
            entry(svc.name)["replicas"][cluster] = running
    for record in inputs.decisions:
        _apply_decision(entry(record.service), record)
    for source, text in sorted(inputs.snapshots.items()):
        for name, levels in _snapshot_weights(text).items():
            entry(name)["traffic"][source] = levels
    return [services[name] for name in sorted(services)]


def _apply_decision(item: dict[str, Any], record: DecisionRecord) -> None:
    try:
        doc = json.loads(record.decision)
    except ValueError:
        return
    if not isinstance(doc, dict):
        return
    replicas = _first(doc, "replicas", "placement", "placements")
    if isinstance(replicas, dict) and all(isinstance(v, int) for v in replicas.values()):
        item["replicas"] = dict(replicas)
        item["source"] = "decision"
    explanation = _first(doc, "explanation", "explanations", "explain")
    item["explanation"] = explanation if explanation is not None else doc
    item["decided_at"] = record.decided_at
    if doc.get("unschedulable"):
        item["unschedulable"] = doc["unschedulable"]
    weights = _first(doc, "traffic", "weights")
    if isinstance(weights, dict):
        item["decided_traffic"] = weights


def _first(doc: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in doc:
            return doc[key]
    return None


def _snapshot_weights(text: str) -> dict[str, list[dict[str, int]]]:
    """``{service: [level weights, ...]}`` from one cluster's snapshot document."""
    try:
        routing = json.loads(text).get("routing", {})
        services = routing.get("services", [])
        return {
            str(svc["name"]): [
                dict(level.get("weights", {})) for level in svc.get("priorities", [])
            ]
            for svc in services
            if svc.get("priorities")
        }
    except (ValueError, AttributeError, KeyError, TypeError):
        return {}


def _trust(inputs: StateInputs, rows: Mapping[str, ClusterStatus]) -> list[dict[str, Any]]:
    owners = {c.trust_domain: c.name for c in inputs.clusters}
    out = []
    for td in sorted(set(owners) | set(inputs.bundle_history)):
        history = list(inputs.bundle_history.get(td, ()))[:HISTORY_LIMIT]
        row = rows.get(owners.get(td, ""))
        out.append(
            {
                "trust_domain": td,
                "cluster": owners.get(td),
                "sequence": history[0].sequence if history else None,
                "root_expires_at": None if row is None else row.bundle_expires_at,
                "last_rotation_at": history[0].stored_at if len(history) > 1 else None,
                "registered_at": history[-1].stored_at if history else None,
                "history": [{"sequence": b.sequence, "stored_at": b.stored_at} for b in history],
            }
        )
    return out


def _event(record: EventRecord) -> dict[str, Any]:
    try:
        detail = json.loads(record.detail)
    except ValueError:
        detail = {}
    return {
        "id": record.id,
        "kind": record.kind,
        "subject": record.subject,
        "detail": detail if isinstance(detail, dict) else {},
        "at": record.at,
        "label": event_label(record.kind, detail if isinstance(detail, dict) else {}),
    }


def event_label(kind: str, detail: Mapping[str, Any]) -> str:
    """A short human category for the timeline: join, lease-expired, failover, drill, ..."""
    if kind == "lease":
        to = detail.get("to")
        if to == "unreachable":
            return "lease-expired"
        if to == "healthy" and detail.get("from") == "unreachable":
            return "recovered"
        return "lease"
    return {
        "cluster-joined": "join",
        "bundle-updated": "rotation",
        "snapshot-nacked": "nack",
    }.get(kind, kind)
