"""What the publisher serves and the keys that tell whether a rebuild can change it (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from federation.model.api import HealthReport, ServiceHealth
from federation.service.leases import Reachability
from federation.service.snapshots import MemberView
from federation.store import BundleRecord


@dataclass(frozen=True)
class ServedSnapshot:
    """A stored snapshot as served: its version, content digest, encoded body and the same
    body gzip-compressed (both encoded once per version, not per watcher)."""

    version: int
    digest: str
    body: bytes
    created_at: float
    gzipped: bytes = b""


def routing_key(services: tuple[ServiceHealth, ...]) -> tuple[object, ...]:
    """The part of a cluster's services a snapshot depends on (not load metrics, which change
    with every report)."""
    return tuple(
        (
            svc.name,
            svc.endpoints,
            svc.allowed_sources,
            svc.tcp_endpoints,
            svc.timeout_s,
            svc.retry,
            svc.fault,
        )
        for svc in services
    )


def report_key(report: HealthReport) -> tuple[object, ...]:
    """What of a report can change any snapshot: routing-relevant services and probe verdicts."""
    return (routing_key(report.services), tuple((p.cluster, p.ok) for p in report.peers))


def world_key(
    members: Sequence[MemberView],
    reach: Reachability,
    bundles: Sequence[BundleRecord],
    generation: int,
) -> tuple[object, ...]:
    """Everything a rebuild plans from, minus load metrics: equal keys, equal snapshots (the
    publisher skips the plan)."""
    return (
        tuple(
            (m.name, m.trust_domain, m.locality, m.gateway_addresses, routing_key(m.services))
            for m in members
        ),
        tuple(sorted(reach.states.items())),
        reach.links_down,
        tuple((b.trust_domain, b.sequence, b.bundle, b.signed_update) for b in bundles),
        generation,
    )
