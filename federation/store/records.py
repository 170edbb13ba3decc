"""Records the store hands out and takes in.

All timestamps are ``float`` seconds since the Unix epoch, supplied by the caller (the store
never reads the clock). JSON documents are stored and returned as text: the exact string that
was validated on write (a ``str`` is stored verbatim, a mapping is serialised compactly), so
callers can ``Model.model_validate_json(record.document)`` without a re-encode.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import Field

from federation.model import FrozenModel, Locality
from federation.store.composed import DocumentPart, join_parts


class ClusterRecord(FrozenModel):
    """A registered cluster: what the join flow stores and placement reads.

    Stored as one JSON document keyed by ``name``; adding optional fields later needs no
    migration.
    """

    name: str
    trust_domain: str
    locality: Locality
    gateway_addresses: tuple[str, ...] = ()
    capacity: int = 0
    cost_per_unit: float = 0.0
    cost_labels: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    registered_at: float = 0.0
    jwt_key_id: str | None = None
    credentials_fingerprint: str | None = None


@dataclass(frozen=True)
class BundleRecord:
    """One trust domain's current (or historical) SPIFFE bundle as the federation relays it."""

    trust_domain: str
    sequence: int
    bundle: str
    signed_update: str | None
    stored_at: float


@dataclass(frozen=True)
class ReportRecord:
    """The latest health report of a cluster; ``received_at`` is its lease renewal time."""

    cluster: str
    received_at: float
    report: str


@dataclass(frozen=True)
class SnapshotRecord:
    """The current snapshot of a cluster; ``version`` is assigned by the store, strictly rising.
    ``digest`` is the content digest its writer stored with it (``None`` if it gave none)."""

    cluster: str
    version: int
    document: str
    created_at: float
    digest: str | None = None


@dataclass(frozen=True)
class ComposedSnapshot:
    """A cluster's latest snapshot stored as a composed document, as its parts: literals and
    slices of shared texts that are the same objects for every snapshot read through one
    store while they are current (see :meth:`Store.get_snapshot_parts`)."""

    cluster: str
    version: int
    created_at: float
    digest: str | None
    parts: tuple[DocumentPart, ...]

    @property
    def document(self) -> str:
        return join_parts(self.parts)


@dataclass(frozen=True)
class AckState:
    """What a cluster's gateways said about its snapshots.

    ``acked_version`` is the highest version ever ACKed (0: none). ``nacked_version`` and
    ``nacked_error`` are the last NACK (0 / ``None``: none); a NACK is current when
    ``nacked_version > acked_version``.
    """

    cluster: str
    acked_version: int = 0
    acked_at: float | None = None
    nacked_version: int = 0
    nacked_error: str | None = None
    nacked_at: float | None = None


@dataclass(frozen=True)
class ServiceRecord:
    """A declared service with its placement policy document."""

    name: str
    policy: str
    updated_at: float


@dataclass(frozen=True)
class DecisionRecord:
    """The placement engine's latest decision for one service."""

    service: str
    decision: str
    decided_at: float


@dataclass(frozen=True)
class EventRecord:
    """One timeline entry; ``id`` rises in commit order."""

    id: int
    kind: str
    subject: str
    detail: str
    at: float


@dataclass(frozen=True, order=True)
class Change:
    """Something under ``topic`` changed; re-read it. ``seq`` rises in commit order.

    Topics: ``cluster:<name>``, ``bundle:<trust-domain>``, ``report:<cluster>``,
    ``snapshot:<cluster>``, ``ack:<cluster>``, ``service:<name>``, ``decision``, ``event``,
    ``token:<id>``.
    """

    seq: int
    topic: str = field(compare=False)

    @property
    def kind(self) -> str:
        """The part of the topic before ``:`` (``cluster``, ``report``, ...)."""
        return self.topic.partition(":")[0]

    @property
    def subject(self) -> str:
        """The part of the topic after ``:`` (a cluster name, trust domain, ...; may be empty)."""
        return self.topic.partition(":")[2]


@dataclass(frozen=True)
class PruneCounts:
    """What :meth:`~federation.store.Store.prune` deleted."""

    events: int = 0
    tokens: int = 0
