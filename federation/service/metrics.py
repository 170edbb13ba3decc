"""Prometheus metrics of one federation replica, in their own registry (one per app instance).

Exposed at ``GET /metrics``: clusters by lease state, snapshot pushes, push-to-ACK latency and
rejected updates by reason.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from federation.model.api import LeaseState

_STATES: tuple[LeaseState, ...] = ("pending", "healthy", "unreachable")
_MAX_PENDING_PUSHES = 100_000


class FederationMetrics:
    """Counters and histograms of the API. Not thread-safe beyond what prometheus-client is;
    used from trio tasks only."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.clusters = Gauge(
            "isthmus_federation_clusters",
            "Joined clusters by lease state",
            ["state"],
            registry=self.registry,
        )
        self.snapshot_pushes = Counter(
            "isthmus_federation_snapshot_pushes",
            "Snapshots sent to watching gateways",
            registry=self.registry,
        )
        self.push_to_ack = Histogram(
            "isthmus_federation_push_to_ack_seconds",
            "Time from a snapshot version's first push to its ACK or NACK",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.rejected = Counter(
            "isthmus_federation_rejected_updates",
            "Requests refused, by reason",
            ["reason"],
            registry=self.registry,
        )
        self._first_push: dict[tuple[str, int], float] = {}

    def set_cluster_states(self, states: Mapping[str, LeaseState]) -> None:
        for state in _STATES:
            self.clusters.labels(state=state).set(
                sum(1 for value in states.values() if value == state)
            )

    def pushed(self, cluster: str, version: int, at: float) -> None:
        """A watcher of ``cluster`` was sent ``version`` at ``at`` (clock seconds)."""
        self.snapshot_pushes.inc()
        if len(self._first_push) >= _MAX_PENDING_PUSHES:
            self._first_push.clear()  # bounded memory: gateways that never ACK
        self._first_push.setdefault((cluster, version), at)

    def answered(self, cluster: str, version: int, at: float) -> None:
        """``cluster`` ACKed or NACKed ``version`` at ``at``."""
        pushed_at = self._first_push.pop((cluster, version), None)
        if pushed_at is not None:
            self.push_to_ack.observe(max(0.0, at - pushed_at))

    def reject(self, reason: str) -> None:
        self.rejected.labels(reason=reason).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
