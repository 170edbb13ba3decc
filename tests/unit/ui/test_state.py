"""build_state: what the dashboard shows for a given store content (pure, no I/O)."""

from __future__ import annotations

import json
from typing import Any

from federation.model import Locality
from federation.model.api import ClusterStatus, FederationStatus, HealthReport
from federation.store import BundleRecord, ClusterRecord, DecisionRecord, EventRecord
from federation.ui import StateInputs, build_state, event_label

NAMES = ("aws-use1", "gcp-euw1", "azure-weu")
CLOUDS = {"aws-use1": "aws", "gcp-euw1": "gcp", "azure-weu": "azure"}


def _row(name: str, lease: str) -> ClusterStatus:
    return ClusterStatus(
        cluster=name,
        trust_domain=f"{name}.test",
        locality=Locality(cloud=CLOUDS[name], region="r"),
        lease=lease,  # type: ignore[arg-type]
        last_report_age_s=0.1,
        bundle_sequence=1,
        bundle_expires_at=2000.0,
        snapshot_version=3,
        acked_version=3,
    )


def _report(name: str) -> HealthReport:
    peers = [p for p in NAMES if p != name]
    return HealthReport.model_validate(
        {
            "sequence": 1,
            "sent_at": 1.0,
            "services": [
                {"name": "checkout.shop", "endpoints": [{"address": "127.0.0.1:1"}]},
            ],
            "peers": [{"cluster": p, "ok": True} for p in peers],
            "links": [
                {"destination": p, "service": "checkout.shop", "request_rate": 10.0} for p in peers
            ]
            + [
                {
                    "destination": peers[0],
                    "service": "catalog.shop",
                    "request_rate": 30.0,
                    "error_rate": 0.5,
                    "latency_ms": 80.0,
                }
            ],
        }
    )


def _inputs(states: dict[str, str], **extra: Any) -> StateInputs:
    return StateInputs(
        now=1000.0,
        status=FederationStatus(clusters=tuple(_row(n, states[n]) for n in NAMES)),
        clusters=[
            ClusterRecord(
                name=n, trust_domain=f"{n}.test", locality=Locality(cloud=CLOUDS[n], region="r")
            )
            for n in NAMES
        ],
        reports={n: _report(n) for n in NAMES},
        **extra,
    )


def test_links_sum_services_and_weight_error_rates() -> None:
    state = build_state(_inputs({n: "healthy" for n in NAMES}))
    links = {(link["source"], link["destination"]): link for link in state["links"]}
    assert len(links) == 6 and all(link["state"] == "up" for link in links.values())
    busy = links[("aws-use1", "gcp-euw1")]
    assert busy["request_rate"] == 40.0
    assert busy["error_rate"] == 15.0 / 40.0  # 0.5 of 30 rps, 0 of 10 rps
    assert busy["latency_ms"] == 80.0


def test_an_unreachable_cluster_has_no_live_traffic_and_its_links_are_down() -> None:
    state = build_state(
        _inputs({"aws-use1": "healthy", "gcp-euw1": "unreachable", "azure-weu": "healthy"})
    )
    clusters = {c["name"]: c for c in state["clusters"]}
    assert clusters["gcp-euw1"]["state"] == "unreachable"
    assert clusters["gcp-euw1"]["services"][0]["request_rate"] == 0.0
    touching = [
        link for link in state["links"] if "gcp-euw1" in (link["source"], link["destination"])
    ]
    assert len(touching) == 4
    assert all(
        link["state"] == "down" and link["request_rate"] == 0.0
        for link in touching
        if link["destination"] == "gcp-euw1"
    )
    assert all(link["state"] == "down" for link in touching)
    replicas = state["placement"][0]["replicas"]
    assert replicas == {"aws-use1": 1, "azure-weu": 1, "gcp-euw1": 0}


def test_a_decision_gives_replicas_explanations_and_unschedulable() -> None:
    doc = {
        "service": "checkout.shop",
        "placement": {"aws-use1": 2},
        "traffic": {},
        "unschedulable": {"constraint": "capacity", "message": "short by 1"},
        "explanations": {"aws-use1": {"chosen": True, "reason": "cheapest"}},
    }
    decision = DecisionRecord("checkout.shop", json.dumps(doc), 900.0)
    state = build_state(_inputs({n: "healthy" for n in NAMES}, decisions=[decision]))
    service = state["placement"][0]
    assert service["replicas"] == {"aws-use1": 2} and service["source"] == "decision"
    assert service["explanation"] == {"aws-use1": {"chosen": True, "reason": "cheapest"}}
    assert service["unschedulable"]["message"] == "short by 1"
    assert service["decided_at"] == 900.0


def test_traffic_weights_come_from_each_source_clusters_snapshot() -> None:
    snapshot = {
        "routing": {
            "services": [
                {
                    "name": "checkout.shop",
                    "priorities": [
                        {"weights": {"aws-use1": 1, "gcp-euw1": 1}},
                        {"weights": {"azure-weu": 1}},
                    ],
                },
                {"name": "catalog.shop", "priorities": []},
            ]
        }
    }
    state = build_state(
        _inputs(
            {n: "healthy" for n in NAMES},
            snapshots={"azure-weu": json.dumps(snapshot), "aws-use1": "{bad"},
        )
    )
    checkout = next(s for s in state["placement"] if s["name"] == "checkout.shop")
    assert checkout["traffic"] == {"azure-weu": [{"aws-use1": 1, "gcp-euw1": 1}, {"azure-weu": 1}]}


def test_trust_shows_sequence_expiry_and_only_real_rotations() -> None:
    history = {
        "aws-use1.test": [
            BundleRecord("aws-use1.test", 2, "{}", "jws", 500.0),
            BundleRecord("aws-use1.test", 1, "{}", None, 100.0),
        ],
        "gcp-euw1.test": [BundleRecord("gcp-euw1.test", 1, "{}", None, 100.0)],
    }
    state = build_state(_inputs({n: "healthy" for n in NAMES}, bundle_history=history))
    trust = {t["trust_domain"]: t for t in state["trust"]}
    assert trust["aws-use1.test"]["sequence"] == 2
    assert trust["aws-use1.test"]["last_rotation_at"] == 500.0
    assert trust["aws-use1.test"]["root_expires_at"] == 2000.0
    assert trust["gcp-euw1.test"]["last_rotation_at"] is None
    assert trust["azure-weu.test"]["sequence"] is None


def test_timeline_labels_name_what_happened() -> None:
    events = [
        EventRecord(1, "cluster-joined", "aws-use1", "{}", 1.0),
        EventRecord(
            2, "lease", "aws-use1", json.dumps({"from": "healthy", "to": "unreachable"}), 2.0
        ),
        EventRecord(
            3, "lease", "aws-use1", json.dumps({"from": "unreachable", "to": "healthy"}), 3.0
        ),
        EventRecord(4, "drill", "aws-use1", "not json", 4.0),
    ]
    state = build_state(_inputs({n: "healthy" for n in NAMES}, events=events))
    assert [e["label"] for e in state["events"]] == ["join", "lease-expired", "recovered", "drill"]
    assert state["events"][-1]["detail"] == {}
    assert event_label("bundle-updated", {}) == "rotation"
