"""Small builders for placement scenarios, so each test states only what matters to it."""

from __future__ import annotations

from typing import Any

from federation.model.placement import ClusterSpec, Scenario, ServicePolicy


def cluster(name: str, cloud: str, region: str, zone: str = "", **fields: Any) -> ClusterSpec:
    fields.setdefault("capacity", 100.0)
    fields.setdefault("cost_per_unit_hour", 0.05)
    return ClusterSpec(name=name, cloud=cloud, region=region, zone=zone, **fields)


def service(name: str, **fields: Any) -> ServicePolicy:
    fields.setdefault("replicas", 1)
    return ServicePolicy(name=name, **fields)


def scenario(clusters: list[ClusterSpec], services: list[ServicePolicy], **fields: Any) -> Scenario:
    return Scenario(clusters=tuple(clusters), services=tuple(services), **fields)


def used_units(placements: dict[str, dict[str, int]], units: dict[str, float]) -> dict[str, float]:
    """Units per cluster occupied by ``placements`` (``units``: service -> units/replica)."""
    used: dict[str, float] = {}
    for name, per_cluster in placements.items():
        for cluster_name, replicas in per_cluster.items():
            used[cluster_name] = used.get(cluster_name, 0.0) + replicas * units[name]
    return used
