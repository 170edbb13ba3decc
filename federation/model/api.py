"""Wire models of the federation API, shared by the service and the gateway's client.

Every model is frozen and rejects unknown fields, so a typo in a gateway's request is a 422 that
names the field rather than a silently ignored value. Lists and strings carry size limits: the
API refuses oversized documents before any of it is stored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from federation.model.base import FrozenModel
from federation.model.routing import (
    FaultPolicy,
    Locality,
    RetryPolicy,
    RoutingModel,
    check_address,
    check_cluster_name,
)

#: Upper bounds on list and string sizes (also the API's documented limits).
MAX_TOKEN_CHARS = 4096
MAX_BUNDLE_CHARS = 256 * 1024
MAX_SIGNED_UPDATE_CHARS = 512 * 1024
MAX_ADDRESSES = 16
MAX_LABELS = 64
MAX_LABEL_CHARS = 256
MAX_SERVICES = 1000
MAX_ENDPOINTS = 1000
MAX_PEERS = 2000
MAX_ERROR_CHARS = 4096

LeaseState = Literal["pending", "healthy", "unreachable"]


def _check_labels(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels, got {len(value)}")
    for key, item in value.items():
        if not key or len(key) > 63:
            raise ValueError(f"label key {key[:70]!r} must be 1..63 characters")
        if len(item) > MAX_LABEL_CHARS:
            raise ValueError(f"label {key!r} is longer than {MAX_LABEL_CHARS} characters")
    return value


class Cost(FrozenModel):
    """What running capacity in a cluster costs, for the placement engine."""

    per_unit_hour: float = Field(default=0.0, ge=0, le=1e6)
    labels: dict[str, str] = Field(default_factory=dict)

    _labels = field_validator("labels")(_check_labels)


class JoinRequest(FrozenModel):
    """A gateway registers its cluster with a single-use join token."""

    token: str = Field(min_length=1, max_length=MAX_TOKEN_CHARS)
    trust_domain: str = Field(min_length=1, max_length=255)
    trust_bundle: str = Field(
        min_length=2,
        max_length=MAX_BUNDLE_CHARS,
        description="the cluster's SPIFFE trust bundle (JSON); must hold a jwt-svid key",
    )
    gateway_addresses: tuple[str, ...] = Field(min_length=1, max_length=MAX_ADDRESSES)
    locality: Locality
    capacity: int = Field(default=0, ge=0, le=10**9)
    cost: Cost = Cost()
    labels: dict[str, str] = Field(default_factory=dict)

    _labels = field_validator("labels")(_check_labels)

    @field_validator("gateway_addresses")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_address(item) for item in value)


class JoinResponse(FrozenModel):
    """What a joined cluster needs to talk to the federation from now on.

    The cluster authenticates later requests with JWT-SVIDs signed by a ``jwt-svid`` key of its
    own registered bundle, for ``audience``, living at most ``max_token_ttl_s``.
    """

    cluster: str
    trust_domain: str
    audience: str
    max_token_ttl_s: int = Field(ge=1)
    report_interval_s: float = Field(gt=0)
    bundles: dict[str, str] = Field(
        default_factory=dict, description="trust domain -> SPIFFE bundle JSON of every member"
    )
    federation_urls: tuple[str, ...] = Field(
        default=(), max_length=MAX_ADDRESSES, description="every replica's URL, for failover"
    )


class EndpointHealth(FrozenModel):
    """One backend of an exported service, as its gateway sees it."""

    address: str
    protocol: Literal["http1", "h2c"] = "http1"
    healthy: bool = True
    weight: int = Field(default=1, ge=1, le=1000)
    zone: str = Field(default="", max_length=128)

    _address = field_validator("address")(check_address)


class ServiceHealth(FrozenModel):
    """Per exported service: endpoints, load and latency, plus who may call it."""

    name: str = Field(min_length=3, max_length=127, description="'<service>.<namespace>'")
    endpoints: tuple[EndpointHealth, ...] = Field(default=(), max_length=MAX_ENDPOINTS)
    allowed_sources: tuple[str, ...] = Field(
        default=(), max_length=MAX_PEERS, description="clusters allowed to call; '*' = all"
    )
    capacity: int = Field(default=0, ge=0, le=10**9)
    in_flight: int = Field(default=0, ge=0, le=10**9)
    request_rate: float = Field(default=0.0, ge=0, le=1e9)
    latency_ewma_ms: float = Field(default=0.0, ge=0, le=1e7)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    # Per-service settings the exporting gateway declares in its routing.yaml; the federation
    # carries them into the ServiceRoute of every cluster that routes to the service. Optional:
    # absent means the routing model's defaults.
    tcp_endpoints: tuple[EndpointHealth, ...] = Field(
        default=(),
        max_length=MAX_ENDPOINTS,
        description="CONNECT (TCP) targets in this cluster, with health; separate from HTTP "
        "endpoints",
    )
    timeout_s: float | None = Field(default=None, gt=0, le=3600)
    retry: RetryPolicy | None = None
    fault: FaultPolicy | None = None

    @property
    def healthy_endpoints(self) -> tuple[EndpointHealth, ...]:
        return tuple(ep for ep in (*self.endpoints, *self.tcp_endpoints) if ep.healthy)


class PeerProbe(FrozenModel):
    """What a gateway sees of another cluster's gateway."""

    cluster: str
    ok: bool
    latency_ms: float | None = Field(default=None, ge=0, le=1e7)

    _cluster = field_validator("cluster")(check_cluster_name)


class LinkStats(FrozenModel):
    """Traffic this gateway sent towards one destination cluster (optionally one service) over
    the last report interval: what the dashboard draws on the link between the two clusters."""

    destination: str
    service: str = Field(default="", max_length=127, description="'' = all services")
    request_rate: float = Field(default=0.0, ge=0, le=1e9, description="requests/s")
    error_rate: float = Field(default=0.0, ge=0, le=1, description="share of 5xx/failed")
    latency_ms: float = Field(default=0.0, ge=0, le=1e7, description="p99 (or EWMA) latency")

    _destination = field_validator("destination")(check_cluster_name)


class HealthReport(FrozenModel):
    """Sent by a gateway every report interval; renews its cluster's lease."""

    sequence: int = Field(ge=0)
    sent_at: float = Field(ge=0, description="sender's clock, seconds since the epoch")
    services: tuple[ServiceHealth, ...] = Field(default=(), max_length=MAX_SERVICES)
    peers: tuple[PeerProbe, ...] = Field(default=(), max_length=MAX_PEERS)
    links: tuple[LinkStats, ...] = Field(
        default=(), max_length=MAX_PEERS, description="optional: outbound traffic per peer"
    )

    @model_validator(mode="after")
    def _unique(self) -> HealthReport:
        names = [svc.name for svc in self.services]
        if len(set(names)) != len(names):
            raise ValueError("services: duplicate service name")
        peers = [peer.cluster for peer in self.peers]
        if len(set(peers)) != len(peers):
            raise ValueError("peers: duplicate peer cluster")
        return self


class Snapshot(FrozenModel):
    """One cluster's versioned view: its routing model plus the federated trust bundles.

    ``bundles`` maps trust domain -> SPIFFE bundle JSON as the federation holds it;
    ``bundle_updates`` maps trust domain -> the latest signed (JWS) update of that bundle, which
    a gateway verifies against the bundle it already trusts before accepting it.
    """

    version: int = Field(ge=0)
    routing: RoutingModel
    bundles: dict[str, str] = Field(default_factory=dict)
    bundle_updates: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _versions_agree(self) -> Snapshot:
        if self.routing.version != self.version:
            raise ValueError(
                f"routing.version {self.routing.version} differs from version {self.version}"
            )
        return self


class Ack(FrozenModel):
    """A gateway's verdict on a snapshot version: applied (ok) or refused (NACK, with why)."""

    version: int = Field(ge=0)
    ok: bool
    error: str = Field(default="", max_length=MAX_ERROR_CHARS)

    @model_validator(mode="after")
    def _nack_says_why(self) -> Ack:
        if not self.ok and not self.error:
            raise ValueError("error: a NACK must say why the snapshot was refused")
        return self


class BundleUpdateRequest(FrozenModel):
    """``PUT /v1/bundles/{td}``: a JWS-signed bundle update (compact serialisation)."""

    signed_update: str = Field(min_length=1, max_length=MAX_SIGNED_UPDATE_CHARS)


class ClusterStatus(FrozenModel):
    """One row of ``isthmus status``."""

    cluster: str
    trust_domain: str
    locality: Locality
    lease: LeaseState
    last_report_age_s: float | None
    unreachable_from: tuple[str, ...] = Field(
        default=(), description="peers that report they cannot reach this cluster (link down)"
    )
    bundle_sequence: int | None
    bundle_expires_at: float | None = Field(description="earliest CA expiry, epoch seconds")
    snapshot_version: int | None
    acked_version: int | None
    nacked_version: int | None = None
    nack_error: str = ""


class FederationStatus(FrozenModel):
    """``GET /v1/status``: every cluster, for operators."""

    clusters: tuple[ClusterStatus, ...] = ()


class TimelineEvent(FrozenModel):
    """One entry of the federation's timeline (joins, lease changes, bundle updates, NACKs)."""

    id: int
    kind: str
    subject: str
    detail: dict[str, object] = Field(default_factory=dict)
    at: float


class Timeline(FrozenModel):
    """``GET /v1/events``: events after a given id, oldest first."""

    events: tuple[TimelineEvent, ...] = ()
