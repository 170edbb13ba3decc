"""``isthmus up``'s topology file: clusters, services, intervals and the traffic generator.

Validated once (frozen, unknown keys rejected, errors name the file and field). With no file,
the bundled :data:`DEFAULT_CONFIG` (three clouds, two services) is used; a copy lives in
``examples/isthmus-up.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from federation.model.base import FrozenModel, load_model_file
from isthmus.runner.topology import ClusterSpec

DEFAULT_CONFIG = Path(__file__).with_name("default.yaml")
#: Replica ports start here above a cluster's ``port_base``.
REPLICA_PORT_STEP = 100


class UpCluster(FrozenModel):
    """One simulated cluster: name, where it pretends to run, and its port block."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    cloud: str = Field(min_length=1)
    region: str = Field(min_length=1)
    port_base: int = Field(ge=1024, le=64000, description="admin; outbound +1; inbound +443")
    capacity: int = Field(default=100, ge=0)

    def spec(self, offset: int) -> ClusterSpec:
        base = self.port_base + offset
        return ClusterSpec(self.name, self.cloud, self.region, base + 443, base + 1, base)

    def replica_port(self, index: int, offset: int) -> int:
        return self.port_base + offset + REPLICA_PORT_STEP + index


class UpService(FrozenModel):
    """A demo service: where replicas run until the placement engine decides, and its policy."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{0,200}$")
    clusters: tuple[str, ...] = Field(min_length=1)
    policy: dict[str, Any] = Field(default_factory=dict)


class UpTraffic(FrozenModel):
    """The built-in traffic generator: idempotent GETs per cluster per service."""

    rate_per_s: float = Field(default=10.0, ge=0, le=1000)
    timeout_s: float = Field(default=10.0, gt=0, le=120)


class UpConfig(FrozenModel):
    """The whole local federation ``isthmus up`` runs."""

    federation_port: int = Field(default=8443, ge=1024, le=65000)
    report_interval_s: float = Field(default=1.0, gt=0, le=60)
    missed_intervals: int = Field(default=3, ge=1, le=100)
    probe_interval_s: float = Field(default=0.5, gt=0, le=60)
    clusters: tuple[UpCluster, ...] = Field(min_length=1)
    services: tuple[UpService, ...] = ()
    traffic: UpTraffic = UpTraffic()

    @model_validator(mode="after")
    def _known_clusters(self) -> UpConfig:
        names = [c.name for c in self.clusters]
        if len(set(names)) != len(names):
            raise ValueError(f"clusters: names must be unique, got {names}")
        for service in self.services:
            unknown = sorted(set(service.clusters) - set(names))
            if unknown:
                raise ValueError(f"services.{service.name}.clusters: unknown clusters {unknown}")
        return self

    @classmethod
    def from_file(cls, path: Path) -> UpConfig:
        """Load and validate ``path``; errors name the file and fields."""
        return load_model_file(cls, path)

    def cluster(self, name: str) -> UpCluster:
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        known = ", ".join(c.name for c in self.clusters)
        raise KeyError(f"no cluster {name!r} (clusters: {known})")

    def ports(self, offset: int) -> list[int]:
        """Every TCP port the federation, gateways and replicas listen on."""
        ports = [self.federation_port + offset]
        for c in self.clusters:
            spec = c.spec(offset)
            ports += [spec.inbound_port, spec.outbound_port, spec.admin_port]
            ports += [c.replica_port(i, offset) for i in range(len(self.services))]
        return ports

    def with_intervals(self, report_s: float, probe_s: float) -> UpConfig:
        """The same topology with other report/probe intervals (tests run faster)."""
        return self.model_copy(update={"report_interval_s": report_s, "probe_interval_s": probe_s})
