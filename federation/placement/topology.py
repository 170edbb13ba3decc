"""Clusters compiled into numpy arrays, plus the cluster-to-cluster latency and egress matrices.

Index ``i`` is the ``i``-th cluster in name order everywhere in the engine, so ``argmax`` over a
score vector breaks ties by cluster name. A :class:`Topology` is immutable once built; health,
load and capacity updates make a new one that shares the matrices and the selector cache.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from federation.model.placement import ClusterSpec, HealthState, NetworkSpec, ServicePolicy

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


def _codes(keys: list[Any]) -> IntArray:
    table: dict[Any, int] = {}
    return np.array([table.setdefault(key, len(table)) for key in keys], dtype=np.int64)


@dataclass(frozen=True, eq=False)
class Topology:
    """Per-cluster arrays (index = name order) and ``[source, target]`` network matrices."""

    specs: tuple[ClusterSpec, ...]
    network: NetworkSpec
    index: Mapping[str, int]
    cloud: IntArray
    region: IntArray
    zone: IntArray
    has_zone: BoolArray
    latency: FloatArray
    egress: FloatArray
    _selector_cache: dict[tuple[Any, ...], BoolArray] = field(default_factory=dict)
    _filter_cache: dict[tuple[Any, ...], list[tuple[str, BoolArray]]] = field(default_factory=dict)

    @cached_property
    def locality_codes(self) -> list[tuple[int, int, int]]:
        """Per cluster ``(zone or -1 without a zone, region, cloud)`` codes as Python ints."""
        zones = np.where(self.has_zone, self.zone, -1).tolist()
        return list(zip(zones, self.region.tolist(), self.cloud.tolist(), strict=True))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.specs)

    @property
    def size(self) -> int:
        return len(self.specs)

    def domain_codes(self, over: str) -> IntArray:
        """Spread domain of every cluster: ``cloud``, ``region`` or ``zone``."""
        return {"cloud": self.cloud, "region": self.region, "zone": self.zone}[over]

    def static_mask(self, policy: ServicePolicy) -> BoolArray:
        """Clusters allowed by the selector, allow-list and residency rules (cached, read-only)."""
        key = (
            tuple(sorted(policy.cluster_selector.items())),
            policy.clusters,
            policy.allowed_regions,
            policy.denied_clouds,
        )
        mask = self._selector_cache.get(key)
        if mask is None:
            mask = np.ones(self.size, dtype=np.bool_)
            for name, allowed in self.filter_masks(policy):
                del name
                mask &= allowed
            mask.setflags(write=False)
            self._selector_cache[key] = mask
        return mask

    def filter_masks(self, policy: ServicePolicy) -> list[tuple[str, BoolArray]]:
        """Each static hard constraint of ``policy`` with the clusters it allows, in order."""
        key = (
            "filters",
            tuple(sorted(policy.cluster_selector.items())),
            policy.clusters,
            policy.allowed_regions,
            policy.denied_clouds,
        )
        cached = self._filter_cache.get(key)
        if cached is None:
            cached = list(self._compute_filter_masks(policy))
            for _, mask in cached:
                mask.setflags(write=False)
            self._filter_cache[key] = cached
        return cached

    def _compute_filter_masks(self, policy: ServicePolicy) -> Iterable[tuple[str, BoolArray]]:
        specs = self.specs
        if policy.cluster_selector:
            wanted = policy.cluster_selector.items()
            yield (
                "cluster_selector",
                np.array([all(s.labels.get(k) == v for k, v in wanted) for s in specs]),
            )
        if policy.clusters:
            allow = set(policy.clusters)
            yield "clusters", np.array([s.name in allow for s in specs], dtype=np.bool_)
        if policy.allowed_regions:
            regions = set(policy.allowed_regions)
            yield (
                "allowed_regions",
                np.array(
                    [s.region in regions or f"{s.cloud}/{s.region}" in regions for s in specs],
                    dtype=np.bool_,
                ),
            )
        if policy.denied_clouds:
            denied = set(policy.denied_clouds)
            yield "denied_clouds", np.array([s.cloud not in denied for s in specs], dtype=np.bool_)

    def with_clusters(self, updates: Iterable[ClusterSpec]) -> Topology:
        """A topology with some clusters' health/load/capacity/cost replaced.

        Raises ``KeyError`` if an update names a new cluster or moves one (other locality or
        labels): the caller then builds a fresh topology.
        """
        specs = list(self.specs)
        for spec in updates:
            i = self.index[spec.name]
            old = specs[i]
            same = (old.cloud, old.region, old.zone, old.labels)
            if (spec.cloud, spec.region, spec.zone, spec.labels) != same:
                raise KeyError(spec.name)
            specs[i] = spec
        return Topology(
            specs=tuple(specs),
            network=self.network,
            index=self.index,
            cloud=self.cloud,
            region=self.region,
            zone=self.zone,
            has_zone=self.has_zone,
            latency=self.latency,
            egress=self.egress,
            _selector_cache=self._selector_cache,
            _filter_cache=self._filter_cache,
        )


@dataclass(frozen=True, eq=False)
class ClusterState:
    """The per-cluster numbers that change between plans (health, load, capacity)."""

    capacity: FloatArray
    load: FloatArray
    cost: FloatArray
    health: FloatArray
    reachable: BoolArray
    growable: BoolArray
    recovered_at: FloatArray
    inv_capacity: FloatArray
    health_list: list[float]
    recovered_list: list[float | None]

    @classmethod
    def of(cls, specs: tuple[ClusterSpec, ...]) -> ClusterState:
        """Compile ``specs`` (in topology order)."""
        reachable = np.array(
            [s.health is not HealthState.UNREACHABLE and not s.draining for s in specs]
        )
        capacity = np.array([s.capacity for s in specs], dtype=np.float64)
        inv_capacity = np.zeros_like(capacity)
        np.divide(1.0, capacity, out=inv_capacity, where=capacity > 0)
        return cls(
            capacity=capacity,
            inv_capacity=inv_capacity,
            health_list=[s.health_fraction for s in specs],
            recovered_list=[s.recovered_at for s in specs],
            load=np.array([s.load for s in specs], dtype=np.float64),
            cost=np.array([s.cost_per_unit_hour for s in specs], dtype=np.float64),
            health=np.array([s.health_fraction for s in specs], dtype=np.float64),
            reachable=reachable.astype(np.bool_),
            growable=np.array([s.health is HealthState.HEALTHY and not s.draining for s in specs]),
            recovered_at=np.array(
                [np.nan if s.recovered_at is None else s.recovered_at for s in specs]
            ),
        )


def build_topology(clusters: Iterable[ClusterSpec], network: NetworkSpec) -> Topology:
    """Compile clusters (sorted by name) and the latency/egress matrices."""
    specs = tuple(sorted(clusters, key=lambda spec: spec.name))
    cloud = _codes([s.cloud for s in specs])
    region = _codes([(s.cloud, s.region) for s in specs])
    zone = _codes([(s.cloud, s.region, s.zone) for s in specs])
    has_zone = np.array([bool(s.zone) for s in specs], dtype=np.bool_)
    same_cloud = cloud[:, None] == cloud[None, :]
    same_region = region[:, None] == region[None, :]
    same_zone = (zone[:, None] == zone[None, :]) & has_zone[:, None]
    lat, egr = network.latency_ms, network.egress_per_gb
    latency = np.where(
        same_zone,
        lat.same_zone,
        np.where(
            same_region, lat.same_region, np.where(same_cloud, lat.same_cloud, lat.cross_cloud)
        ),
    ).astype(np.float64)
    egress = np.where(
        same_region, egr.same_region, np.where(same_cloud, egr.same_cloud, egr.cross_cloud)
    ).astype(np.float64)
    region_of = {(s.cloud, s.region): int(region[i]) for i, s in enumerate(specs)}
    for override in network.overrides:
        a = region_of.get(tuple(override.source.split("/", 1)))  # type: ignore[arg-type]
        b = region_of.get(tuple(override.target.split("/", 1)))  # type: ignore[arg-type]
        if a is None or b is None:
            continue
        pair = np.outer(region == a, region == b)
        pair |= pair.T
        if override.latency_ms is not None:
            latency[pair] = override.latency_ms
        if override.egress_per_gb is not None:
            egress[pair] = override.egress_per_gb
    return Topology(
        specs=specs,
        network=network,
        index={s.name: i for i, s in enumerate(specs)},
        cloud=cloud,
        region=region,
        zone=zone,
        has_zone=has_zone,
        latency=latency,
        egress=egress,
    )
