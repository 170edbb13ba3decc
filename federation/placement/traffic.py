"""Traffic levels: where a source cluster sends a service's requests, in failover order.

Levels come from locality (same zone, same region, same cloud, anywhere — empty levels
dropped) or from the service's explicit order. Inside a level, weights follow placed replicas ×
health, as integers summing to exactly 100 (largest remainder, ties by name); clusters with no
effective health (0 % healthy, or inside the failback window) get no weight, and a level with
no weight left is dropped.

Across levels, each level gets a ``load`` share (integers summing to 100) computed the way Envoy
computes priority load: a level's health is ``healthy% × overprovisioning`` capped at 100, where
the overprovisioning factor is ``100 / min_healthy_percent`` (1.4 by default); traffic spills to
the next level only as far as the levels above lack health. If no level has any health, the
service is in panic and routes by replicas alone, first level first.

Sources in the same "locality class" get identical levels, so a service's traffic is stored
compactly as one entry per class (see :class:`ServiceTraffic`), never per source cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from federation.model.placement import ServicePolicy
from federation.placement.topology import ClusterState, Topology

ClassKey = tuple[str, int]
ANY: ClassKey = ("any", 0)


@dataclass(frozen=True)
class TrafficLevel:
    """One priority level: ``weights`` (cluster -> int, sum 100) and its ``load`` percent."""

    weights: Mapping[str, int]
    load: int

    def to_json(self) -> dict[str, object]:
        return {"weights": dict(self.weights), "load": self.load}


def largest_remainder(values: Sequence[tuple[str, float]], total: int = 100) -> dict[str, int]:
    """Integers proportional to ``values`` summing to ``total``; remainders go by size, then name.

    ``values`` must contain a positive number.
    """
    if len(values) == 1:
        return {values[0][0]: total}
    whole = sum(value for _, value in values)
    assert whole > 0
    quotas = [(name, value * total / whole) for name, value in values]
    result = {name: int(quota) for name, quota in quotas}
    left = total - sum(result.values())
    order = sorted(quotas, key=lambda item: (-(item[1] - int(item[1])), item[0]))
    for name, _ in order[:left]:
        result[name] += 1
    return dict(sorted(result.items()))


Member = tuple[str, int, float]  # cluster name, replicas, effective health 0..1


def build_levels(
    groups: Sequence[Sequence[Member]], min_healthy_percent: float
) -> tuple[TrafficLevel, ...]:
    """Levels with weights and Envoy priority load from ordered groups of placed clusters."""
    groups = [group for group in groups if group]
    if all(h == 1.0 for group in groups for _, _, h in group):
        return tuple(
            TrafficLevel(largest_remainder([(n, r) for n, r, _ in group]), 100 if rank == 0 else 0)
            for rank, group in enumerate(groups)
        )
    live = [[m for m in g if m[1] * m[2] > 0] for g in groups]
    if not any(live):
        panic = [[(name, replicas, 1.0) for name, replicas, _ in g] for g in groups]
        return _with_loads(panic, [100.0] + [0.0] * (len(panic) - 1))
    live = [g for g in live if g]
    factor = 100.0 / min_healthy_percent
    healths = []
    for group in live:
        healthy = sum(r * h for _, r, h in group) / sum(r for _, r, _ in group) * 100.0
        healths.append(min(100.0, healthy * factor))
    whole = sum(healths)
    loads: list[float] = []
    if whole < 100.0:
        loads = [h * 100.0 / whole for h in healths]
    else:
        left = 100.0
        for health in healths:
            loads.append(min(health, left))
            left -= loads[-1]
    return _with_loads(live, loads)


def _with_loads(groups: Sequence[Sequence[Member]], loads: list[float]) -> tuple[TrafficLevel, ...]:
    keys = [f"{i:06d}" for i in range(len(groups))]
    shares = largest_remainder(list(zip(keys, loads, strict=True)))
    return tuple(
        TrafficLevel(largest_remainder([(n, r * h) for n, r, h in group]), shares[key])
        for key, group in zip(keys, groups, strict=True)
    )


@dataclass(eq=False)
class ServiceTraffic:
    """One service's levels per source locality class, computed on first use and cached.

    Class keys: ``("zone", z)``, ``("region", r)``, ``("cloud", c)`` for sources sharing a zone,
    region or cloud with a placed cluster, else ``("any", 0)``; explicit failover has one class.
    """

    topo: Topology
    state: ClusterState
    policy: ServicePolicy
    placement: Mapping[int, int]
    now: float
    _cache: dict[ClassKey, tuple[TrafficLevel, ...]] = field(default_factory=dict)
    _members: list[tuple[Member, int, int, int]] | None = None
    _by_groups: dict[tuple[tuple[Member, ...], ...], tuple[TrafficLevel, ...]] = field(
        default_factory=dict
    )

    def class_of(self, source: int) -> ClassKey:
        """The locality class of a source cluster for this service."""
        if self.policy.failover.mode == "explicit" or not self.placement:
            return ANY
        zone, region, cloud = self.topo.locality_codes[source]
        placed = self._placed()
        if zone >= 0 and any(entry[1] == zone for entry in placed):
            return ("zone", zone)
        if any(entry[2] == region for entry in placed):
            return ("region", region)
        if any(entry[3] == cloud for entry in placed):
            return ("cloud", cloud)
        return ANY

    def classes(self) -> list[ClassKey]:
        """Every class a source can fall in (at most 3 × placed clusters + 1)."""
        if self.policy.failover.mode == "explicit" or not self.placement:
            return [ANY]
        keys: set[ClassKey] = {ANY}
        for _, zone, region, cloud in self._placed():
            if zone >= 0:
                keys.add(("zone", zone))
            keys.add(("region", region))
            keys.add(("cloud", cloud))
        return sorted(keys)

    def levels_for(self, source: int) -> tuple[TrafficLevel, ...]:
        """Levels for one source cluster (empty if the service runs nowhere)."""
        key = self.class_of(source)
        levels = self._cache.get(key)
        if levels is None:
            levels = self._cache[key] = self._compute(key)
        return levels

    def all_classes(self) -> dict[ClassKey, tuple[TrafficLevel, ...]]:
        """Materialise every class (what the federation would put in snapshots)."""
        for key in self.classes():
            if key not in self._cache:
                self._cache[key] = self._compute(key)
        return dict(self._cache)

    def _member(self, i: int) -> tuple[str, int, float]:
        health = self.state.health_list[i]
        recovered = self.state.recovered_list[i]
        if recovered is not None and self.now < recovered + self.policy.failover.failback_after:
            health = 0.0
        return (self.topo.specs[i].name, self.placement[i], health)

    def _placed(self) -> list[tuple[Member, int, int, int]]:
        """Placed clusters as (member, zone, region, cloud), computed once."""
        if self._members is None:
            codes = self.topo.locality_codes
            self._members = [(self._member(i), *codes[i]) for i in sorted(self.placement)]
        return self._members

    def _compute(self, key: ClassKey) -> tuple[TrafficLevel, ...]:
        if not self.placement:
            return ()
        members = [entry[0] for entry in self._placed()]
        if self.policy.failover.mode == "explicit":
            order = {name: rank for rank, name in enumerate(self.policy.failover.order)}
            groups = [[m for m in members if order.get(m[0]) == rank] for rank in range(len(order))]
            groups.append([m for m in members if m[0] not in order])
        else:
            groups = self._locality_groups(key)
        signature = tuple(tuple(group) for group in groups if group)
        levels = self._by_groups.get(signature)
        if levels is None:
            levels = build_levels(signature, self.policy.failover.min_healthy_percent)
            self._by_groups[signature] = levels
        return levels

    def _locality_groups(self, key: ClassKey) -> list[list[Member]]:
        kind, code = key
        placed = self._placed()
        column = {"zone": 1, "region": 2, "cloud": 3}.get(kind, 0)
        region = cloud = -1
        if column:
            example = next(entry for entry in placed if entry[column] == code)
            region, cloud = example[2], example[3]
        zone = code if kind == "zone" else -2
        groups: list[list[Member]] = [[], [], [], []]
        for member, z, r, c in placed:
            if z == zone:
                groups[0].append(member)
            elif r == region and kind != "cloud":
                groups[1].append(member)
            elif c == cloud:
                groups[2].append(member)
            else:
                groups[3].append(member)
        return groups
