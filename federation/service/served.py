"""What the publisher serves and the keys that tell whether a rebuild can change it (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from federation.model.api import HealthReport, ServiceHealth
from federation.service.leases import Reachability
from federation.service.snapshot_bytes import EncodedContent, stamp, stamp_body
from federation.service.snapshots import MemberView
from federation.store import BundleRecord


class ServedSnapshot:
    """A stored snapshot as served: its version, content digest and creation time, and its
    bytes, built on first use and kept (per version, not per watcher): ``body`` (JSON),
    ``gzipped`` (the same body compressed; ``b""`` = not offered) and, for a stream, the
    routing and bundle section apart (:meth:`routing_parts`).

    Made either from ``content`` (what a rebuild planned: nothing is copied per cluster until
    asked for) or from a ready ``body`` (then :meth:`routing_parts` is ``None`` and
    ``gzipped`` is what was given)."""

    __slots__ = ("_body", "_gzipped", "content", "created_at", "digest", "version")

    def __init__(
        self,
        version: int,
        digest: str,
        body: bytes | None,
        created_at: float,
        gzipped: bytes = b"",
        *,
        content: EncodedContent | None = None,
    ) -> None:
        if body is None and content is None:
            raise ValueError("a served snapshot needs a body or content")
        self.version = version
        self.digest = digest
        self.created_at = created_at
        self.content = content
        self._body = body
        self._gzipped: bytes | None = gzipped if content is None else None

    @property
    def body(self) -> bytes:
        if self._body is None:
            assert self.content is not None
            self._body = stamp_body(self.content, self.version)
        return self._body

    @property
    def gzipped(self) -> bytes:
        if self._gzipped is None:
            assert self.content is not None
            stamped = stamp(self.content, self.version)
            self._body, self._gzipped = stamped.body, stamped.gzipped
        return self._gzipped

    def routing_parts(self, prefix: bytes = b"", suffix: bytes = b"") -> tuple[bytes, bytes] | None:
        """``(routing JSON at this version between prefix and suffix, bundle section)``
        without building the body; the section is the same ``bytes`` object for every
        snapshot of one rebuild. ``None`` for a snapshot made from a ready body."""
        if self.content is None:
            return None
        routing = self.content.routing_bytes(self.version, prefix, suffix)
        return routing, self.content.shared.raw


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


def member_key(member: MemberView, routing: object | None = None) -> tuple[object, ...]:
    """A member's part of :func:`world_key`; ``routing``: ``routing_key(member.services)``
    when the caller has it."""
    if routing is None:
        routing = routing_key(member.services)
    m = member
    return (m.name, m.trust_domain, m.locality, m.gateway_addresses, routing)


def world_key(
    members: Sequence[MemberView],
    reach: Reachability,
    bundles: Sequence[BundleRecord],
    generation: int,
    member_keys: Sequence[tuple[object, ...]] | None = None,
) -> tuple[object, ...]:
    """Everything a rebuild plans from, minus load metrics: equal keys, equal snapshots (the
    publisher skips the plan). ``member_keys``: each member's :func:`member_key`, when the
    caller keeps them."""
    return (
        tuple(member_keys) if member_keys is not None else tuple(map(member_key, members)),
        tuple(sorted(reach.states.items())),
        reach.links_down,
        tuple((b.trust_domain, b.sequence, b.bundle, b.signed_update) for b in bundles),
        generation,
    )
