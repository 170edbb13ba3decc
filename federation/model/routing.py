"""The routing model: everything a gateway needs to route, versioned.

In the data-plane issue a gateway reads it from a YAML file; later the federation sends the very
same model inside each cluster's snapshot. Cluster names double as priority-level keys: the
gateway's own cluster name in a level means "local endpoints", any other name means "that peer
gateway".
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from federation.model.base import FrozenModel

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_SERVICE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def check_cluster_name(value: str) -> str:
    """Cluster names are DNS labels: lowercase letters, digits and '-', at most 63."""
    if not _NAME.match(value):
        raise ValueError(f"{value!r} is not a valid cluster name (lowercase DNS label)")
    return value


def check_address(value: str) -> str:
    """``host:port`` with a numeric port; IPv6 hosts in brackets."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not host:port")
    return value


class Locality(FrozenModel):
    """Where a cluster runs."""

    cloud: str
    region: str
    zone: str = ""


class PeerGateway(FrozenModel):
    """Another cluster's east-west gateway, reached over mTLS HTTP/2."""

    cluster: str
    trust_domain: str
    spiffe_id: str = Field(description="the gateway ID the peer must present")
    addresses: tuple[str, ...] = Field(
        min_length=1, description="host:port of its inbound listener"
    )
    locality: Locality

    _cluster = field_validator("cluster")(check_cluster_name)

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_address(item) for item in value)

    @model_validator(mode="after")
    def _id_matches(self) -> PeerGateway:
        expected = f"spiffe://{self.trust_domain}/isthmus/gateway/{self.cluster}"
        if self.spiffe_id != expected:
            raise ValueError(f"spiffe_id must be {expected!r} for cluster {self.cluster!r}")
        return self


class LocalEndpoint(FrozenModel):
    """A backend of a service inside this cluster."""

    address: str
    protocol: Literal["http1", "h2c"] = "http1"
    weight: int = Field(default=1, ge=1, le=1000)
    zone: str = ""

    _address = field_validator("address")(check_address)


class PriorityLevel(FrozenModel):
    """One failover level: cluster name -> weight. Lower index = preferred."""

    weights: dict[str, int] = Field(min_length=1)

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: dict[str, int]) -> dict[str, int]:
        for name, weight in value.items():
            check_cluster_name(name)
            if weight < 0:
                raise ValueError(f"weight of {name!r} is negative")
        if sum(value.values()) <= 0:
            raise ValueError("a priority level needs a positive total weight")
        return value


class RetryPolicy(FrozenModel):
    """When and how a failed attempt is retried (see docs/gateway.md)."""

    attempts: int = Field(default=3, ge=1, le=10, description="total tries including the first")
    per_try_timeout_s: float = Field(default=2.0, gt=0)
    budget_percent: float = Field(default=20.0, ge=0, le=100)
    min_retry_concurrency: int = Field(default=3, ge=0)
    retry_non_idempotent: bool = False


class FaultPolicy(FrozenModel):
    """Injected delay and abort, for failover testing."""

    delay_ms: int = Field(default=0, ge=0, le=600_000)
    delay_percent: float = Field(default=0.0, ge=0, le=100)
    abort_status: int | None = Field(default=None, ge=200, le=599)
    abort_percent: float = Field(default=0.0, ge=0, le=100)


class ServiceRoute(FrozenModel):
    """One global service ``<name>.<namespace>`` as this cluster sees it."""

    name: str = Field(description="'<service>.<namespace>', e.g. 'checkout.shop'")
    local_endpoints: tuple[LocalEndpoint, ...] = ()
    tcp_endpoints: tuple[str, ...] = Field(default=(), description="host:port targets for CONNECT")
    priorities: tuple[PriorityLevel, ...] = ()
    allowed_sources: tuple[str, ...] = Field(
        default=(),
        description="peer clusters allowed to call this service through the inbound listener; "
        "'*' = every federated cluster; empty = deny all remote callers (default deny)",
    )
    timeout_s: float = Field(default=15.0, gt=0)
    retry: RetryPolicy = RetryPolicy()
    fault: FaultPolicy | None = None
    cluster_health: dict[str, float] = Field(
        default_factory=dict,
        description="peer cluster -> share (0..1) of its backends of this service that are "
        "healthy, as the federation saw it (absent = 1.0); the gateway spills to the next "
        "priority level as this drops, the way the placement engine planned",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _SERVICE.match(value):
            raise ValueError(f"{value!r} is not '<service>.<namespace>'")
        return value

    @field_validator("tcp_endpoints")
    @classmethod
    def _tcp(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_address(item) for item in value)

    @field_validator("cluster_health")
    @classmethod
    def _health(cls, value: dict[str, float]) -> dict[str, float]:
        for name, fraction in value.items():
            check_cluster_name(name)
            if not 0.0 <= fraction <= 1.0:
                raise ValueError(f"health of {name!r} must be within 0..1, got {fraction}")
        return value


class RoutingModel(FrozenModel):
    """Everything one gateway routes by. ``version`` only goes up."""

    version: int = Field(ge=0)
    cluster: str
    trust_domain: str
    locality: Locality
    domain_suffix: str = "global"
    peers: tuple[PeerGateway, ...] = ()
    services: tuple[ServiceRoute, ...] = ()

    _cluster = field_validator("cluster")(check_cluster_name)

    @model_validator(mode="after")
    def _consistent(self) -> RoutingModel:
        peers = {peer.cluster for peer in self.peers}
        if self.cluster in peers:
            raise ValueError(f"cluster {self.cluster!r} lists itself as a peer")
        if len(peers) != len(self.peers):
            raise ValueError("duplicate peer cluster")
        names = [svc.name for svc in self.services]
        if len(set(names)) != len(names):
            raise ValueError("duplicate service name")
        known = peers | {self.cluster}
        for svc in self.services:
            for level, prio in enumerate(svc.priorities):
                unknown = sorted(set(prio.weights) - known)
                if unknown:
                    raise ValueError(
                        f"service {svc.name!r} priority {level} names unknown cluster(s) "
                        f"{', '.join(unknown)}"
                    )
        return self
