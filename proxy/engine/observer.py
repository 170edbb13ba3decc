"""What the engine reports: one record per request and per tunnel, plus upstream events.

The gateway implements :class:`Observer` (Prometheus metrics, JSON access log); the proxy
stays free of both. Observer methods are called inline on the request path: they must be
quick and must not raise. A CONNECT produces a :class:`TunnelRecord` when the tunnel ends and
also a :class:`RequestRecord` (method ``CONNECT``, ``bytes_*`` = tunnel bytes), so request
counters that should exclude tunnels filter on the method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(slots=True)
class RequestRecord:
    """One finished HTTP exchange. ``time`` is the wall-clock start (epoch seconds);
    ``duration_s`` is monotonic. ``status`` is what the client got (0: the exchange was
    aborted before a response head). ``reason`` is our ``x-isthmus-reason`` for a local
    reply, ``""`` for a relayed one. ``retries`` counts attempts after the first.
    ``trace_id`` is the W3C trace id the request carried upstream (``""`` for local replies
    made before header processing).
    ``source_cluster`` is the local cluster for the outbound listener, the verified peer
    cluster for the inbound one; ``source_identity`` is the verified peer's identity string
    (inbound; the gateway's is its SPIFFE ID), ``None`` outbound."""

    time: float
    listener: str
    source_cluster: str
    source_identity: str | None
    remote: str
    method: str
    authority: str
    path: str
    service: str
    destination_cluster: str
    endpoint: str
    status: int
    reason: str
    duration_s: float
    retries: int
    bytes_received: int
    bytes_sent: int
    trace_id: str = ""


@dataclass(slots=True)
class TunnelRecord:
    """One finished CONNECT tunnel; ``bytes_up`` went client -> upstream."""

    time: float
    listener: str
    source_cluster: str
    source_identity: str | None
    service: str
    target: str
    destination_cluster: str
    endpoint: str
    status: int
    reason: str
    duration_s: float
    bytes_up: int
    bytes_down: int


@dataclass(frozen=True, slots=True)
class UpstreamEvent:
    """Something happened to an upstream endpoint.

    ``kind``: ``"ejected"`` (``detail`` = the reason, ``until`` set, monotonic seconds),
    ``"unejected"``, ``"retry"`` (``detail`` = the failure kind), ``"failure"`` (an attempt
    failed; ``detail`` = the failure kind), ``"budget_exhausted"`` (a retry was refused by the
    retry budget), ``"healthy"`` / ``"unhealthy"`` (active ``/readyz`` probes of a peer
    gateway flipped; ``service`` is empty since probes are per endpoint).
    """

    kind: str
    service: str
    endpoint: str
    cluster: str
    detail: str = ""
    until: float | None = None


class Observer(Protocol):
    """Injected by the gateway; see the module docstring."""

    def on_request_done(self, record: RequestRecord) -> None: ...

    def on_tunnel_done(self, record: TunnelRecord) -> None: ...

    def on_upstream_event(self, event: UpstreamEvent) -> None: ...


class NullObserver:
    """Discards everything (tests, benchmarks)."""

    def on_request_done(self, record: RequestRecord) -> None:
        pass

    def on_tunnel_done(self, record: TunnelRecord) -> None:
        pass

    def on_upstream_event(self, event: UpstreamEvent) -> None:
        pass
