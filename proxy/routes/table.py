"""The routing table handed to the proxy engine: immutable, swapped whole on reload.

The gateway builds it from the federation's routing model; the proxy knows nothing of SPIFFE or
of the federation. Swapping the table never touches established connections: in-flight requests
keep the :class:`Route` they matched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

EndpointKind = Literal["http1", "h2c", "peer"]


@dataclass(frozen=True, slots=True)
class Locality:
    """Where an endpoint runs; the load balancer prefers the caller's own locality."""

    cluster: str
    cloud: str = ""
    region: str = ""
    zone: str = ""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One upstream destination.

    ``kind`` says how it is reached: ``http1`` / ``h2c`` for backends inside this cluster,
    ``peer`` for another cluster's gateway (mTLS HTTP/2; ``expected_identity`` is the identity it
    must present, checked by the verifier the gateway installs).
    ``key`` is unique within a table and stable across reloads, so outlier state and pools
    survive a reload for endpoints that did not change.
    """

    key: str
    host: str
    port: int
    kind: EndpointKind
    locality: Locality
    weight: int = 1
    expected_identity: str | None = None
    #: share (0..1) of what stands behind this endpoint that is healthy, as the control plane
    #: last saw it (a peer gateway fronting 10 backends of which 4 are up: 0.4); scales the
    #: endpoint's contribution to its level's health, so traffic spills to the next level
    health: float = 1.0


@dataclass(frozen=True, slots=True)
class PriorityGroup:
    """Endpoints of one failover level; weights are relative within the group."""

    endpoints: tuple[Endpoint, ...]


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """See docs/gateway.md: retry-on conditions are fixed (connect failure, reset before
    headers, 503 from a peer gateway, GOAWAY); these bound how much."""

    attempts: int = 3
    per_try_timeout_s: float = 2.0
    budget_percent: float = 20.0
    min_retry_concurrency: int = 3
    retry_non_idempotent: bool = False


@dataclass(frozen=True, slots=True)
class FaultSettings:
    """Injected delay and abort for a percentage of requests."""

    delay_s: float = 0.0
    delay_percent: float = 0.0
    abort_status: int | None = None
    abort_percent: float = 0.0


@dataclass(frozen=True, slots=True)
class Route:
    """One service: its failover levels, tunnel targets and policies."""

    service: str
    priorities: tuple[PriorityGroup, ...] = ()
    tcp_targets: tuple[tuple[str, int], ...] = ()
    retry: RetrySettings = RetrySettings()
    fault: FaultSettings | None = None
    timeout_s: float = 15.0
    allowed_sources: frozenset[str] = frozenset()

    def allows_source(self, source: str) -> bool:
        """Default deny: a remote caller must be listed (or ``*`` must be)."""
        return "*" in self.allowed_sources or source in self.allowed_sources


def parse_authority(authority: str, suffix: str) -> str | None:
    """``checkout.shop.global:80`` -> ``checkout.shop``; ``None`` when the suffix differs.

    Case-insensitive; a trailing dot and a port are ignored.
    """
    host = authority.strip().lower()
    if host.startswith("["):
        return None
    host = host.rsplit(":", 1)[0] if ":" in host else host
    host = host.rstrip(".")
    tail = "." + suffix.lower()
    if not host.endswith(tail):
        return None
    name = host[: -len(tail)]
    return name if name.count(".") == 1 and all(name.split(".")) else None


@dataclass(frozen=True)
class RoutingTable:
    """Immutable table: ``service name -> Route`` plus the domain suffix."""

    version: int
    local_cluster: str
    routes: Mapping[str, Route] = field(default_factory=dict)
    domain_suffix: str = "global"

    def service_for(self, authority: str) -> str | None:
        """The service name an authority addresses, whether or not it is routed."""
        return parse_authority(authority, self.domain_suffix)

    def match(self, authority: str) -> Route | None:
        """The route for an authority, or ``None`` (the caller answers 404 naming it)."""
        name = self.service_for(authority)
        return None if name is None else self.routes.get(name)
