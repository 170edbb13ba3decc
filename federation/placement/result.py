"""The result of a plan: placements, unschedulable services, and lazily computed traffic and
explanations.

A :class:`PlacementPlan` is immutable once :func:`federation.placement.plan` or
:func:`~federation.placement.replan` returns it (the mutating helpers are for the engine only).
Traffic and explanations are pure functions of the plan and are computed on first use: for
10,000 services × 1,000 clusters the full tables would not fit in memory, so a caller asks for
the services (and source clusters) it needs — an HTTP API per service, a snapshot per cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from federation.model.placement import ClusterSpec
from federation.placement.explain import Explanation, explain_service
from federation.placement.placer import Unschedulable
from federation.placement.scoring import CompiledService
from federation.placement.topology import ClusterState, FloatArray, Topology
from federation.placement.traffic import ServiceTraffic, TrafficLevel

Placement = dict[int, int]


@dataclass(frozen=True, eq=False)
class PlanInputs:
    """Everything compiled from a scenario that a plan was computed from."""

    topology: Topology
    clusters: ClusterState
    services: Mapping[str, CompiledService]
    order: tuple[str, ...]
    rank: Mapping[str, int]
    anti: Mapping[str, tuple[str, ...]]
    related: Mapping[str, frozenset[str]]
    demand: Mapping[str, Mapping[str, float]]
    stickiness: float


class PlacementPlan:
    """Placements per service, plus traffic levels and explanations on demand."""

    def __init__(
        self,
        inputs: PlanInputs,
        *,
        now: float,
        placements_by_index: dict[str, Placement],
        used: FloatArray,
        free_before: dict[str, npt.NDArray[np.float32]],
        unschedulable: dict[str, Unschedulable],
        previous: Mapping[str, Placement],
    ) -> None:
        self.inputs = inputs
        self.now = now
        self.placements_by_index = placements_by_index
        self.used = used
        self.free_before = free_before
        self.unschedulable = unschedulable
        self.previous = previous
        self.previous_inputs = inputs
        self.reserved: Mapping[str, Placement] = {}
        #: units per replica of placements made by this plan (a policy may change them)
        self.placed_units: dict[str, float] = {}
        #: services this plan (re-)placed: all for ``plan``, the affected ones for ``replan``
        self.replanned: frozenset[str] = frozenset()
        #: services whose placement differs from the previous plan (or the scenario's current)
        self.moved: frozenset[str] = frozenset()
        self._by_cluster: dict[int, frozenset[str]] = {}
        self._traffic: dict[str, ServiceTraffic] = {}

    # --- public read API -------------------------------------------------------------------

    @property
    def services(self) -> tuple[str, ...]:
        """Service names, sorted."""
        return tuple(sorted(self.inputs.services))

    @property
    def clusters(self) -> tuple[str, ...]:
        """Cluster names, sorted."""
        return self.inputs.topology.names

    def cluster(self, name: str) -> ClusterSpec:
        """The spec this plan used for cluster ``name`` (``KeyError`` if unknown)."""
        return self.inputs.topology.specs[self.inputs.topology.index[name]]

    def placement(self, service: str) -> dict[str, int]:
        """``{cluster: replicas}`` of one service (empty if it runs nowhere)."""
        names = self.inputs.topology.names
        return {names[i]: n for i, n in self.placements_by_index.get(service, {}).items()}

    @property
    def placements(self) -> dict[str, dict[str, int]]:
        """``{service: {cluster: replicas}}`` for every service (services sorted)."""
        return {name: self.placement(name) for name in self.services}

    def used_units(self) -> dict[str, float]:
        """Units this plan's replicas occupy per cluster."""
        return dict(zip(self.clusters, (float(x) for x in self.used), strict=True))

    def service_traffic(self, service: str) -> ServiceTraffic:
        """The compact, per-locality-class traffic of one service (``KeyError`` if unknown)."""
        traffic = self._traffic.get(service)
        if traffic is None:
            traffic = ServiceTraffic(
                self.inputs.topology,
                self.inputs.clusters,
                self.inputs.services[service].policy,
                self.placements_by_index.get(service, {}),
                self.now,
            )
            self._traffic[service] = traffic
        return traffic

    def traffic(self, service: str, source: str) -> tuple[TrafficLevel, ...]:
        """Priority levels for requests to ``service`` from cluster ``source``."""
        return self.service_traffic(service).levels_for(self.inputs.topology.index[source])

    def traffic_table(
        self, service: str, sources: Iterable[str] | None = None
    ) -> dict[str, tuple[TrafficLevel, ...]]:
        """``{source_cluster: levels}`` (every cluster unless ``sources`` is given)."""
        names = self.clusters if sources is None else tuple(sources)
        return {source: self.traffic(service, source) for source in names}

    def traffic_for_source(
        self, source: str, services: Iterable[str] | None = None
    ) -> dict[str, tuple[TrafficLevel, ...]]:
        """``{service: levels}`` for one source cluster: what its snapshot needs."""
        index = self.inputs.topology.index[source]
        names = self.services if services is None else tuple(services)
        return {name: self.service_traffic(name).levels_for(index) for name in names}

    def explain(self, service: str) -> dict[str, Explanation]:
        """Why each cluster was chosen or rejected for ``service``, sorted by cluster name."""
        inputs = self.inputs
        return explain_service(
            inputs.topology,
            inputs.clusters,
            inputs.services[service],
            placement=self.placements_by_index.get(service, {}),
            current=self.previous.get(service, {}),
            free_before=self.free_before[service],
            placements=self.placements_by_index,
            anti=inputs.anti.get(service, ()),
            problem=self.unschedulable.get(service),
        )

    def services_on(self, cluster: int) -> frozenset[str]:
        """Services with replicas on cluster index ``cluster``."""
        return self._by_cluster.get(cluster, frozenset())

    # --- engine-only helpers -----------------------------------------------------------------

    def derive(self, inputs: PlanInputs, now: float) -> PlacementPlan:
        """A copy to re-plan into: placements shared until replaced, ``used`` copied."""
        new = PlacementPlan(
            inputs,
            now=now,
            placements_by_index=dict(self.placements_by_index),
            used=self.used.copy(),
            free_before=dict(self.free_before),
            unschedulable=dict(self.unschedulable),
            previous=self.placements_by_index,
        )
        new.previous_inputs = self.inputs
        new._by_cluster = dict(self._by_cluster)
        if now == self.now:
            changed = {
                i
                for i, (old, spec) in enumerate(
                    zip(self.inputs.topology.specs, inputs.topology.specs, strict=True)
                )
                if old != spec
            }
            for name, traffic in self._traffic.items():
                svc = inputs.services.get(name)
                same_policy = svc is not None and svc.policy is traffic.policy
                if same_policy and not changed.intersection(traffic.placement):
                    new._traffic[name] = traffic
        return new

    def held_units(self, service: str) -> float:
        """Units per replica of the placement ``service`` holds before it is re-placed."""
        if service in self.placed_units:
            return self.placed_units[service]
        svc = self.previous_inputs.services.get(service) or self.inputs.services.get(service)
        return 0.0 if svc is None else svc.policy.units_per_replica

    def drop(self, service: str) -> None:
        """Remove a service and release its units."""
        units = self.held_units(service)
        for i, count in self.placements_by_index.pop(service, {}).items():
            self.used[i] -= count * units
        self.free_before.pop(service, None)
        self.unschedulable.pop(service, None)
        self._traffic.pop(service, None)

    def index_clusters(self, changed: Iterable[str] | None = None) -> None:
        """Rebuild the cluster -> services index (all, or only for ``changed`` services)."""
        if changed is None:
            index: dict[int, set[str]] = {}
            for name, placement in self.placements_by_index.items():
                for i in placement:
                    index.setdefault(i, set()).add(name)
            self._by_cluster = {i: frozenset(names) for i, names in index.items()}
            return
        for name in changed:
            self._traffic.pop(name, None)
            old = set(self.previous.get(name, {}))
            new = set(self.placements_by_index.get(name, {}))
            for i in old - new:
                self._by_cluster[i] = self._by_cluster.get(i, frozenset()) - {name}
            for i in new - old:
                self._by_cluster[i] = self._by_cluster.get(i, frozenset()) | {name}
