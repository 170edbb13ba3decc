"""``plan`` and ``replan``: the placement engine's two entry points (pure: no I/O, no clock).

:func:`plan` places every service in a fixed order (affinity targets first, then by name): the
replicas each service currently runs are reserved up front and released only when that
service's turn comes, so a service can always keep its spot unless the score gain beats the
``stickiness`` bonus. :func:`replan` starts from a previous plan and re-places only the services
a :class:`ChangeSet` affects; everything else, including cached traffic, is shared.
"""

from __future__ import annotations

import heapq
from collections import ChainMap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from federation.model.placement import ClusterSpec, Scenario, ServicePolicy
from federation.placement.errors import ScenarioError
from federation.placement.placer import Unschedulable, place_service
from federation.placement.result import PlacementPlan, PlanInputs
from federation.placement.scoring import CompiledService
from federation.placement.topology import ClusterState, Topology, build_topology

Placement = dict[int, int]


@dataclass(frozen=True)
class ChangeSet:
    """What changed since a plan. Cluster specs replace (or add) clusters by name; service
    policies replace (or add) services by name; ``demand`` replaces a service's whole demand."""

    clusters: tuple[ClusterSpec, ...] = ()
    removed_clusters: tuple[str, ...] = ()
    services: tuple[ServicePolicy, ...] = ()
    removed_services: tuple[str, ...] = ()
    demand: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    now: float | None = None


def _relations(
    policies: Mapping[str, ServicePolicy],
) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]], dict[str, frozenset[str]]]:
    """Placement order, symmetric anti-affinity, and who is related to whom."""
    anti: dict[str, set[str]] = {}
    related: dict[str, set[str]] = {}
    for name, policy in policies.items():
        for other in policy.anti_affinity:
            anti.setdefault(name, set()).add(other)
            anti.setdefault(other, set()).add(name)
        for other in (*policy.affinity, *policy.anti_affinity):
            related.setdefault(name, set()).add(other)
            related.setdefault(other, set()).add(name)
    depth: dict[str, int] = {}

    def depth_of(name: str, seen: frozenset[str]) -> int:
        if name not in depth:
            targets = [t for t in policies[name].affinity if t not in seen]
            depth[name] = 1 + max((depth_of(t, seen | {name}) for t in targets), default=-1)
        return depth[name]

    order = tuple(sorted(policies, key=lambda name: (depth_of(name, frozenset()), name)))
    return (
        order,
        {name: tuple(sorted(others)) for name, others in anti.items()},
        {name: frozenset(others) for name, others in related.items()},
    )


def _compile(
    topo: Topology,
    policies: Mapping[str, ServicePolicy],
    demand: Mapping[str, Mapping[str, float]],
    stickiness: float,
) -> PlanInputs:
    order, anti, related = _relations(policies)
    services = {
        name: CompiledService.of(policies[name], demand.get(name, {}), topo) for name in order
    }
    return PlanInputs(
        topology=topo,
        clusters=ClusterState.of(topo.specs),
        services=services,
        order=order,
        rank={name: i for i, name in enumerate(order)},
        anti=anti,
        related=related,
        demand=dict(demand),
        stickiness=stickiness,
    )


def plan(scenario: Scenario, *, now: float | None = None) -> PlacementPlan:
    """Place every service of ``scenario``; ``now`` defaults to ``scenario.now``."""
    topo = build_topology(scenario.clusters, scenario.network)
    inputs = _compile(
        topo, {s.name: s for s in scenario.services}, scenario.demand, scenario.stickiness
    )
    current = {
        service: {topo.index[name]: count for name, count in per.items() if count > 0}
        for service, per in scenario.current.items()
    }
    return _plan_all(inputs, current, scenario.now if now is None else now)


def _reservations(inputs: PlanInputs, current: Mapping[str, Placement]) -> dict[str, Placement]:
    """What each service may hold until its turn: current replicas on clusters it may still
    use, at most as many as it wants and as still fit (services in plan order)."""
    reserved: dict[str, Placement] = {}
    state = inputs.clusters
    free = state.capacity - state.load
    for name in inputs.order:
        svc, placement = inputs.services[name], current.get(name)
        if not placement:
            continue
        units = svc.policy.units_per_replica
        allowed = inputs.topology.static_mask(svc.policy) & state.reachable
        left, held = svc.desired, {}
        for i, count in sorted(placement.items()):
            fits = min(count, left, int(max(free[i], 0.0) / units + 1e-9)) if allowed[i] else 0
            if fits > 0:
                held[i] = fits
                left -= fits
                free[i] -= fits * units
        reserved[name] = held
    return reserved


def _reserve(inputs: PlanInputs, reserved: Mapping[str, Placement]) -> np.ndarray:
    used = np.zeros(inputs.topology.size)
    for name, placement in reserved.items():
        units = inputs.services[name].policy.units_per_replica
        for i, count in placement.items():
            used[i] += count * units
    return used


def _plan_all(inputs: PlanInputs, current: Mapping[str, Placement], now: float) -> PlacementPlan:
    reserved = _reservations(inputs, current)
    used = _reserve(inputs, reserved)
    result = PlacementPlan(
        inputs,
        now=now,
        placements_by_index={},
        used=used,
        free_before={},
        unschedulable={},
        previous=current,
    )
    result.reserved = reserved
    for name in inputs.order:
        _place(result, name)
    # A service that came up short may have been blocked by reservations released after its
    # turn (a service that moved away or wants fewer replicas): give it one more try.
    for name in [name for name in inputs.order if name in result.unschedulable]:
        _place(result, name)
    result.index_clusters()
    result.replanned = frozenset(inputs.order)
    result.moved = frozenset(
        name for name in inputs.order if result.placements_by_index[name] != current.get(name, {})
    )
    return result


def _place(result: PlacementPlan, name: str) -> bool:
    """(Re-)place one service inside ``result``; True if its placement changed."""
    inputs = result.inputs
    svc = inputs.services[name]
    before = result.placements_by_index.get(name)
    if before is not None:
        units = result.held_units(name)
        for i, count in before.items():
            result.used[i] -= count * units
    else:
        units = svc.policy.units_per_replica
        for i, count in result.reserved.get(name, {}).items():
            result.used[i] -= count * units
    anti = inputs.anti.get(name, ())
    outcome = place_service(
        inputs.topology,
        inputs.clusters,
        svc,
        current=result.previous.get(name, {}),
        used=result.used,
        placements=_with_held_anti_targets(result, anti),
        anti=anti,
        stickiness=inputs.stickiness,
    )
    result.placements_by_index[name] = outcome.placement
    result.placed_units[name] = svc.policy.units_per_replica
    result.free_before[name] = outcome.free_before
    if outcome.unschedulable is None:
        result.unschedulable.pop(name, None)
    else:
        result.unschedulable[name] = outcome.unschedulable
    return outcome.placement != (before or {})


def _with_held_anti_targets(
    result: PlacementPlan, anti: tuple[str, ...]
) -> Mapping[str, Placement]:
    """Placements as a service sees them at its turn: anti-affinity targets not yet re-placed
    still hold their reserved replicas, so the service cannot move next to one of them and
    push it out at its own turn (a re-plan must never place fewer replicas)."""
    placed = result.placements_by_index
    held = {t: result.reserved[t] for t in anti if t not in placed and t in result.reserved}
    return ChainMap(placed, held) if held else placed


def _changed_inputs(
    previous: PlacementPlan, changes: ChangeSet, topo: Topology
) -> tuple[PlanInputs, set[str]]:
    """New inputs sharing what did not change, and the services whose inputs changed."""
    old = previous.inputs
    policies = {name: svc.policy for name, svc in old.services.items()}
    demand = dict(old.demand)
    touched: set[str] = set()
    for name in changes.removed_services:
        if name not in policies:
            raise ScenarioError("removed_services", f"unknown service {name!r}")
        del policies[name]
        demand.pop(name, None)
    for policy in changes.services:
        policies[policy.name] = policy
        touched.add(policy.name)
    for name, rates in changes.demand.items():
        if name not in policies:
            raise ScenarioError("demand", f"unknown service {name!r}")
        demand[name] = dict(rates)
        touched.add(name)
    _check_names(topo, policies, touched, demand)
    if changes.removed_services:
        _check_still_referenced(policies, set(changes.removed_services))
    if changes.services or changes.removed_services:
        inputs = _compile(topo, policies, demand, old.stickiness)
    else:
        services = dict(old.services)
        for name in touched:
            services[name] = CompiledService.of(policies[name], demand.get(name, {}), topo)
        inputs = PlanInputs(
            topo,
            ClusterState.of(topo.specs),
            services,
            old.order,
            old.rank,
            old.anti,
            old.related,
            demand,
            old.stickiness,
        )
    return inputs, touched


def _check_names(
    topo: Topology,
    policies: Mapping[str, ServicePolicy],
    touched: Iterable[str],
    demand: Mapping[str, Mapping[str, float]],
) -> None:
    for name in touched:
        policy = policies[name]
        for field_name, names in (
            ("clusters", policy.clusters),
            ("failover.order", policy.failover.order),
        ):
            for cluster in names:
                if cluster not in topo.index:
                    raise ScenarioError(
                        f"services[{name}].{field_name}", f"unknown cluster {cluster!r}"
                    )
        for field_name, targets in (
            ("affinity", policy.affinity),
            ("anti_affinity", policy.anti_affinity),
        ):
            for target in targets:
                if target not in policies:
                    raise ScenarioError(
                        f"services[{name}].{field_name}", f"unknown service {target!r}"
                    )
        for source in demand.get(name, {}):
            if source not in topo.index:
                raise ScenarioError(f"demand[{name}]", f"unknown cluster {source!r}")


def _check_still_referenced(policies: Mapping[str, ServicePolicy], removed: set[str]) -> None:
    for name, policy in sorted(policies.items()):
        for field_name, targets in (
            ("affinity", policy.affinity),
            ("anti_affinity", policy.anti_affinity),
        ):
            gone = sorted(removed.intersection(targets))
            if gone:
                raise ScenarioError(
                    "removed_services",
                    f"{gone[0]!r} is still named in services[{name}].{field_name}; "
                    "change that service in the same change set",
                )


def replan(previous: PlacementPlan, changes: ChangeSet) -> PlacementPlan:
    """Re-place only the services ``changes`` affects; the rest keep their placement as is.

    Affected: services whose policy or demand changed, services running on a changed cluster,
    the currently unschedulable services when the change may have made room (a cluster got
    healthier or freer, a service changed or left), and — transitively —
    services related by affinity/anti-affinity to one whose placement moved. Adding, removing or
    moving (other locality/labels) a cluster falls back to a full :func:`plan` with the previous
    placement as the current one. Raises :class:`ScenarioError` on unknown names.
    """
    now = previous.now if changes.now is None else changes.now
    try:
        if changes.removed_clusters:
            raise KeyError(changes.removed_clusters[0])
        topo = previous.inputs.topology.with_clusters(changes.clusters)
    except KeyError:  # a cluster was added, removed or moved: every index may shift
        return _full_replan(previous, changes, now)
    inputs, touched = _changed_inputs(previous, changes, topo)
    result = previous.derive(inputs, now)
    dropped = [name for name in previous.inputs.services if name not in inputs.services]
    for name in dropped:
        result.drop(name)
    queue: list[tuple[int, str]] = []
    queued: set[str] = set()

    def enqueue(name: str) -> None:
        if name in inputs.services and name not in queued:
            queued.add(name)
            heapq.heappush(queue, (inputs.rank[name], name))

    retry = set(result.unschedulable) if _may_free_room(previous, changes) else set()
    for name in sorted(touched | retry):
        enqueue(name)
    for spec in changes.clusters:
        for name in sorted(previous.services_on(inputs.topology.index[spec.name])):
            enqueue(name)
    while queue:
        _, name = heapq.heappop(queue)
        if _place(result, name):
            for other in sorted(inputs.related.get(name, ())):
                enqueue(other)
    # As in a full plan: a service left short may fit now that later ones moved away.
    for name in sorted(set(result.unschedulable) & queued, key=inputs.rank.__getitem__):
        _place(result, name)
    result.index_clusters(changed=queued | set(dropped))
    result.replanned = frozenset(queued)
    result.moved = frozenset(
        name
        for name in queued | set(dropped)
        if result.placements_by_index.get(name, {}) != previous.placements_by_index.get(name, {})
    )
    return result


_HEALTH_RANK = {"unreachable": 0, "degraded": 1, "healthy": 2}


def _may_free_room(previous: PlacementPlan, changes: ChangeSet) -> bool:
    """Whether a change can make room for a service that is short of replicas."""
    if changes.services or changes.removed_services or changes.demand:
        return True
    for spec in changes.clusters:
        old = previous.cluster(spec.name)
        if (
            _HEALTH_RANK[spec.health] > _HEALTH_RANK[old.health]
            or spec.capacity - spec.load > old.capacity - old.load
            or (old.draining and not spec.draining)
        ):
            return True
    return False


def _full_replan(previous: PlacementPlan, changes: ChangeSet, now: float) -> PlacementPlan:
    specs = {spec.name: spec for spec in previous.inputs.topology.specs}
    for name in changes.removed_clusters:
        if specs.pop(name, None) is None:
            raise ScenarioError("removed_clusters", f"unknown cluster {name!r}")
    specs.update({spec.name: spec for spec in changes.clusters})
    policies = {name: svc.policy for name, svc in previous.inputs.services.items()}
    for name in changes.removed_services:
        policies.pop(name, None)
    policies.update({policy.name: policy for policy in changes.services})
    demand = {**previous.inputs.demand, **{k: dict(v) for k, v in changes.demand.items()}}
    demand = {k: v for k, v in demand.items() if k in policies}
    topo = build_topology(specs.values(), previous.inputs.topology.network)
    _check_names(topo, policies, policies, demand)
    inputs = _compile(topo, policies, demand, previous.inputs.stickiness)
    current = {
        service: {topo.index[c]: n for c, n in placement.items() if c in topo.index}
        for service, placement in previous.placements.items()
        if service in policies
    }
    return _plan_all(inputs, current, now)


__all__ = ["ChangeSet", "Unschedulable", "plan", "replan"]
