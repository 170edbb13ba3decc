"""Decision documents and planned routes from a plan, recomputed only where they changed (pure).

A service's traffic depends on its policy, its placement and the effective health of the
clusters it is placed on (health fraction, zero inside the failback window), plus the share of
its own backends up in each (``cluster_health`` for gateways). :class:`OutcomeCache` keys each
service's traffic, decision document and routes on exactly that signature, so a plan after one
cluster's health change rebuilds the documents of the services on that cluster only — not
``O(services × clusters)`` of traffic for everything. Explanations are recomputed for services
whose signature changed or that the engine re-placed, and for every service when the set of
cluster specs changed (each explanation shows every cluster's state).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from federation.model.api import HealthReport
from federation.placement import PlacementPlan, traffic_json
from federation.service.placement_routes import PlannedRoute
from federation.service.placement_scenario import service_health

Signature = tuple[object, ...]


def traffic_signature(
    result: PlacementPlan, service: str, reports: Mapping[str, HealthReport]
) -> Signature:
    """What a service's traffic and routes are a function of (see the module docstring)."""
    policy = result.inputs.services[service].policy
    window = policy.failover.failback_after
    members = []
    for cluster, replicas in sorted(result.placement(service).items()):
        spec = result.cluster(cluster)
        health = spec.health_fraction
        if spec.recovered_at is not None and result.now < spec.recovered_at + window:
            health = 0.0
        share = service_health(reports.get(cluster), service)
        members.append((cluster, replicas, health, share))
    return (policy, tuple(members))


def decision_document(result: PlacementPlan, service: str, now: float) -> dict[str, Any]:
    """The stored decision of one service, without explanations."""
    traffic = traffic_json(result, service)
    receiving = sorted(
        {
            cluster
            for levels in traffic.values()
            for level in levels  # type: ignore[attr-defined]
            for cluster, weight in level["weights"].items()
            if weight > 0 and level["load"] > 0
        }
    )
    problem = result.unschedulable.get(service)
    return {
        "service": service,
        "placement": result.placement(service),
        "traffic": traffic,
        "receiving": receiving,
        "unschedulable": None
        if problem is None
        else {
            "constraint": problem.constraint,
            "missing": problem.missing,
            "desired": problem.desired,
            "message": problem.message,
        },
        "decided_at": now,
    }


def planned_routes(
    document: Mapping[str, Any], reports: Mapping[str, HealthReport]
) -> dict[str, PlannedRoute]:
    """``{source: PlannedRoute}`` of one service from its decision document."""
    service = document["service"]
    health = {
        cluster: fraction
        for cluster in document["placement"]
        if (fraction := service_health(reports.get(cluster), service)) is not None
    }
    return {
        source: PlannedRoute(tuple(dict(level["weights"]) for level in levels), health)
        for source, levels in document["traffic"].items()
        if levels
    }


@dataclass
class Outcome:
    """What one plan changed: every document, the routes, and who needs new explanations."""

    documents: dict[str, dict[str, Any]]
    routes: dict[str, dict[str, PlannedRoute]]
    changed: list[str]
    explain: list[str]


@dataclass
class OutcomeCache:
    """Documents and routes of the last plan, by service (owned by the placement loop)."""

    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    routes: dict[str, dict[str, PlannedRoute]] = field(default_factory=dict)
    signatures: dict[str, Signature] = field(default_factory=dict)
    cluster_specs: object = None

    def update(
        self, result: PlacementPlan, reports: Mapping[str, HealthReport], now: float
    ) -> Outcome:
        """Refresh what changed in ``result``; documents of unchanged services are reused
        (their explanations too, unless listed in ``Outcome.explain``)."""
        specs = result.inputs.topology.specs
        all_clusters_changed = specs != self.cluster_specs
        self.cluster_specs = specs
        documents: dict[str, dict[str, Any]] = {}
        routes: dict[str, dict[str, PlannedRoute]] = {}
        changed, explain = [], []
        for name in result.services:
            signature = traffic_signature(result, name, reports)
            old = self.documents.get(name)
            if old is None or self.signatures.get(name) != signature:
                doc = decision_document(result, name, now)
                if old is not None and "explanations" in old:
                    doc["explanations"] = old["explanations"]
                self.signatures[name] = signature
                self.routes[name] = planned_routes(doc, reports)
                changed.append(name)
            else:
                doc = old
            if all_clusters_changed or name in changed or name in result.replanned:
                explain.append(name)
            documents[name] = doc
            routes[name] = self.routes[name]
        for gone in set(self.documents) - set(documents):
            self.signatures.pop(gone, None)
            self.routes.pop(gone, None)
        self.documents = documents
        return Outcome(documents, routes, changed, explain)
