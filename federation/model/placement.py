"""Placement scenario models: clusters, network costs, service policies, demand.

A :class:`Scenario` is everything the placement engine reads, in one frozen document: the same
model validates ``isthmus plan --input SCENARIO.yaml`` and (later) the federation's live view.
Cross-references (a demand source, an explicit cluster list, an affinity target) are checked
once here, so the engine can trust every name it is given. See ``docs/placement.md``.
"""

from __future__ import annotations

import math
import re
from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from federation.model.base import FrozenModel
from federation.model.routing import check_cluster_name

_SERVICE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_REGION_KEY = re.compile(r"^[^/\s]+/[^/\s]+$")

#: Envoy's default overprovisioning factor 1.4 expressed as "spill starts below this healthy %".
DEFAULT_MIN_HEALTHY_PERCENT = 100.0 / 1.4


class HealthState(StrEnum):
    """A cluster's health as its leases report it."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNREACHABLE = "unreachable"


_DEFAULT_HEALTH_PERCENT = {
    HealthState.HEALTHY: 100.0,
    HealthState.DEGRADED: 50.0,
    HealthState.UNREACHABLE: 0.0,
}


class ClusterSpec(FrozenModel):
    """One cluster that can run replicas. Capacity, load and replica sizes share one unit."""

    name: str
    cloud: str = Field(min_length=1)
    region: str = Field(min_length=1)
    zone: str = ""
    capacity: float = Field(ge=0, description="schedulable units")
    cost_per_unit_hour: float = Field(default=0.0, ge=0)
    labels: dict[str, str] = Field(default_factory=dict)
    health: HealthState = HealthState.HEALTHY
    healthy_percent: float | None = Field(
        default=None, ge=0, le=100, description="share of the cluster serving; default by state"
    )
    load: float = Field(default=0.0, ge=0, description="units used by workloads not planned here")
    draining: bool = Field(default=False, description="accepts no replicas; existing ones move")
    recovered_at: float | None = Field(
        default=None, description="when it last became healthy again (failback window start)"
    )

    _name = field_validator("name")(check_cluster_name)

    @model_validator(mode="after")
    def _health_consistent(self) -> ClusterSpec:
        if self.health is HealthState.UNREACHABLE and self.healthy_percent not in (None, 0.0):
            raise ValueError("healthy_percent must be 0 (or absent) for an unreachable cluster")
        return self

    @property
    def health_fraction(self) -> float:
        """How much of the cluster serves, 0..1 (explicit ``healthy_percent`` wins)."""
        percent = self.healthy_percent
        if percent is None:
            percent = _DEFAULT_HEALTH_PERCENT[self.health]
        return percent / 100.0


class LatencyDefaults(FrozenModel):
    """Round-trip time in milliseconds by locality class (used for the latency objective)."""

    same_zone: float = Field(default=1.0, ge=0)
    same_region: float = Field(default=2.0, ge=0)
    same_cloud: float = Field(default=40.0, ge=0)
    cross_cloud: float = Field(default=80.0, gt=0)


class EgressDefaults(FrozenModel):
    """Egress price in currency per GB by locality class."""

    same_region: float = Field(default=0.0, ge=0)
    same_cloud: float = Field(default=0.02, ge=0)
    cross_cloud: float = Field(default=0.09, ge=0)


class NetworkOverride(FrozenModel):
    """A measured latency or price between two regions, keyed ``cloud/region`` (symmetric)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    source: str = Field(alias="from")
    target: str = Field(alias="to")
    latency_ms: float | None = Field(default=None, ge=0)
    egress_per_gb: float | None = Field(default=None, ge=0)

    @field_validator("source", "target")
    @classmethod
    def _region_key(cls, value: str) -> str:
        if not _REGION_KEY.match(value):
            raise ValueError(f"{value!r} is not 'cloud/region'")
        return value


class NetworkSpec(FrozenModel):
    """Latency and egress price between clusters: class defaults plus region-pair overrides."""

    latency_ms: LatencyDefaults = LatencyDefaults()
    egress_per_gb: EgressDefaults = EgressDefaults()
    overrides: tuple[NetworkOverride, ...] = ()


class SpreadPolicy(FrozenModel):
    """Topology spread (Kubernetes semantics): replicas per domain may differ by ``max_skew``."""

    over: Literal["cloud", "region", "zone"] = "zone"
    min_domains: int = Field(default=1, ge=1)
    max_skew: int = Field(default=1, ge=1)


class ObjectiveWeights(FrozenModel):
    """Relative weights of the soft objectives; at least one must be positive."""

    cost: float = Field(default=1.0, ge=0)
    latency: float = Field(default=1.0, ge=0)
    headroom: float = Field(default=0.5, ge=0)

    @model_validator(mode="after")
    def _some_weight(self) -> ObjectiveWeights:
        if self.cost + self.latency + self.headroom <= 0:
            raise ValueError("objectives: at least one of cost, latency, headroom must be > 0")
        return self


class FailoverPolicy(FrozenModel):
    """How traffic fails over between the clusters that run a service."""

    mode: Literal["locality", "explicit"] = "locality"
    order: tuple[str, ...] = Field(
        default=(), description="explicit mode: clusters, preferred first"
    )
    min_healthy_percent: float = Field(default=DEFAULT_MIN_HEALTHY_PERCENT, gt=0, le=100)
    failback_after: float = Field(default=300.0, ge=0, description="seconds")

    @model_validator(mode="after")
    def _order_matches_mode(self) -> FailoverPolicy:
        if self.mode == "explicit" and not self.order:
            raise ValueError("failover.order: explicit mode needs at least one cluster")
        if self.mode == "locality" and self.order:
            raise ValueError("failover.order is only used with mode: explicit")
        if len(set(self.order)) != len(self.order):
            raise ValueError("failover.order lists a cluster twice")
        return self


class ServicePolicy(FrozenModel):
    """Where one service may run and how it is scored; see docs/placement.md."""

    name: str
    replicas: int | None = Field(default=None, ge=0)
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=1)
    target_utilisation: float = Field(default=0.7, gt=0, le=1)
    rps_per_replica: float = Field(default=100.0, gt=0)
    units_per_replica: float = Field(default=1.0, gt=0)
    bytes_per_request: float = Field(default=10_000.0, ge=0)
    spread: SpreadPolicy | None = None
    cluster_selector: dict[str, str] = Field(default_factory=dict)
    clusters: tuple[str, ...] = Field(default=(), description="allow-list of cluster names")
    allowed_regions: tuple[str, ...] = ()
    denied_clouds: tuple[str, ...] = ()
    affinity: tuple[str, ...] = Field(default=(), description="run only beside these services")
    anti_affinity: tuple[str, ...] = Field(default=(), description="never beside these")
    objectives: ObjectiveWeights = ObjectiveWeights()
    failover: FailoverPolicy = FailoverPolicy()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _SERVICE.match(value):
            raise ValueError(f"{value!r} is not '<service>.<namespace>'")
        return value

    @model_validator(mode="after")
    def _replica_bounds(self) -> ServicePolicy:
        if self.replicas is not None and (self.min is not None or self.max is not None):
            raise ValueError("give either replicas or min/max, not both")
        if self.replicas is None and self.max is None:
            raise ValueError("replicas (or max) is required")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if self.spread is not None and self.spread.min_domains > max(self.max_replicas, 1):
            raise ValueError(
                f"spread.min_domains ({self.spread.min_domains}) cannot be met with at most "
                f"{self.max_replicas} replica(s)"
            )
        if self.name in self.affinity or self.name in self.anti_affinity:
            raise ValueError("affinity/anti_affinity may not name the service itself")
        return self

    @property
    def max_replicas(self) -> int:
        """Upper bound on replicas (fixed count or ``max``)."""
        if self.replicas is not None:
            return self.replicas
        assert self.max is not None
        return self.max

    def desired_replicas(self, demand_rps: float) -> int:
        """Fixed ``replicas``, or enough for ``demand_rps`` at the target utilisation."""
        if self.replicas is not None:
            return self.replicas
        needed = math.ceil(demand_rps / (self.rps_per_replica * self.target_utilisation) - 1e-9)
        return max(self.min or 0, min(self.max_replicas, needed))


class Scenario(FrozenModel):
    """Everything one plan reads. ``now`` is seconds on the same clock as ``recovered_at``."""

    now: float = 0.0
    stickiness: float = Field(
        default=0.05, ge=0, le=1, description="score bonus for staying (hysteresis)"
    )
    network: NetworkSpec = NetworkSpec()
    clusters: tuple[ClusterSpec, ...] = Field(min_length=1)
    services: tuple[ServicePolicy, ...] = ()
    demand: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="service -> source cluster -> requests/s"
    )
    current: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="service -> cluster -> replicas running now"
    )

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        try:
            check_scenario_references(self)
        except ValueError as err:
            # a custom error keeps the line free of pydantic's "Value error, " prefix
            raise PydanticCustomError(
                "invalid_reference", "{problem}", {"problem": str(err)}
            ) from err
        return self


def _unknown(names: object, known: set[str]) -> list[str]:
    assert isinstance(names, (tuple, list, dict))
    return sorted(str(name) for name in names if name not in known)


def check_scenario_references(scenario: Scenario) -> None:
    """Raise ``ValueError`` naming the first field that refers to something undefined."""
    clusters = {cluster.name for cluster in scenario.clusters}
    if len(clusters) != len(scenario.clusters):
        raise ValueError("clusters: a cluster name is used twice")
    services = {service.name for service in scenario.services}
    if len(services) != len(scenario.services):
        raise ValueError("services: a service name is used twice")
    for svc in scenario.services:
        checks = (
            ("clusters", svc.clusters, clusters, "cluster"),
            ("failover.order", svc.failover.order, clusters, "cluster"),
            ("affinity", svc.affinity, services, "service"),
            ("anti_affinity", svc.anti_affinity, services, "service"),
        )
        for field, names, known, kind in checks:
            missing = _unknown(names, known)
            if missing:
                raise ValueError(f"services[{svc.name}].{field}: unknown {kind} {missing[0]!r}")
    for field, table in (("demand", scenario.demand), ("current", scenario.current)):
        for service, per_cluster in table.items():
            if service not in services:
                raise ValueError(f"{field}: unknown service {service!r}")
            missing = _unknown(per_cluster, clusters)
            if missing:
                raise ValueError(f"{field}[{service}]: unknown cluster {missing[0]!r}")
            if any(value < 0 for value in per_cluster.values()):
                raise ValueError(f"{field}[{service}]: values must not be negative")
