"""The :class:`Store` Protocol: everything the federation service persists.

Every backend (``sqlite``, ``postgres``) implements this contract and passes the same
conformance suite (``tests/integration/store``). Rules that hold for every method:

* All methods are ``async`` and safe to call from many trio tasks at once; blocking database
  calls run in ``trio.to_thread``. Cancelling a call may leave the database call running to
  completion in its thread (a cancelled write may still commit).
* Every write is one transaction: it is applied completely or not at all, and it bumps the
  global change sequence for its topic (see :class:`~federation.store.records.Change`) in that
  same transaction, so a replica that sees the change can read the data. Concurrent
  ``record_report`` (and ``record_ack``) calls may share one transaction (group commit).
* JSON document arguments (``JsonDocument``) must be a JSON *object*: a ``str`` holding one
  (stored verbatim) or a ``Mapping`` (serialised compactly). Anything else raises
  :class:`~federation.store.errors.InvalidDocument` and nothing is stored.
  An :class:`~federation.store.documents.EncodedJsonObject` (text a JSON encoder produced) is
  stored without being parsed again.
* Connection failures raise :class:`~federation.store.errors.StoreUnavailable`.
* The store never reads the clock: callers pass ``now`` / ``at`` / ``received_at``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeAlias, runtime_checkable

from federation.store.composed import ComposedJsonObject
from federation.store.documents import SplitJsonObject
from federation.store.records import (
    AckState,
    BundleRecord,
    Change,
    ClusterRecord,
    ComposedSnapshot,
    DecisionRecord,
    EventRecord,
    PruneCounts,
    ReportRecord,
    ServiceRecord,
    SnapshotRecord,
    WorldRecords,
)

JsonDocument: TypeAlias = str | Mapping[str, Any]
"""A JSON object: its text, or a mapping the store serialises."""

LeaderWork: TypeAlias = Callable[[], Awaitable[None]]


@runtime_checkable
class Store(Protocol):
    """Persistence of the federation: tokens, clusters, bundles, leases, snapshots, placement.

    Obtain one with :func:`federation.store.open_store` (an async context manager that owns the
    connections and background tasks and closes them on exit).
    """

    @property
    def backend(self) -> str:
        """The registry name of the backend (``"sqlite"`` or ``"postgres"``)."""
        ...

    # -- join tokens ---------------------------------------------------------------------------

    async def create_join_token(
        self, token_id: str, cluster: str, secret_hash: str, expires_at: float
    ) -> None:
        """Store a single-use join token for ``cluster``. Raises ``DuplicateToken``."""
        ...

    async def check_join_token(self, token_id: str, secret_hash: str, now: float) -> str:
        """The cluster a token is for, if :meth:`consume_join_token` would accept it now, with
        the same checks and errors in the same order; read-only (the token stays usable)."""
        ...

    async def consume_join_token(self, token_id: str, secret_hash: str, now: float) -> str:
        """Atomically mark the token used and return its cluster name.

        Exactly one of many concurrent callers (across replicas) succeeds. Checks, in order:
        ``TokenNotFound``; ``TokenSecretMismatch`` (constant-time compare; the token stays
        usable); ``TokenAlreadyUsed``; ``TokenExpired`` (``now >= expires_at``). A refused
        token is never consumed.
        """
        ...

    # -- clusters ------------------------------------------------------------------------------

    async def upsert_cluster(self, cluster: ClusterRecord) -> None:
        """Insert or replace the cluster named ``cluster.name``. Topic ``cluster:<name>``."""
        ...

    async def get_cluster(self, name: str) -> ClusterRecord | None:
        """The cluster, or ``None`` if it never joined."""
        ...

    async def list_clusters(self) -> list[ClusterRecord]:
        """Every cluster, ordered by name."""
        ...

    async def cluster_of_trust_domain(self, trust_domain: str) -> str | None:
        """The name of the cluster registered with ``trust_domain`` (the first by name if
        several), or ``None``: a join's conflict check without reading every cluster."""
        ...

    # -- trust bundles -------------------------------------------------------------------------

    async def put_bundle(
        self,
        trust_domain: str,
        sequence: int,
        bundle: JsonDocument,
        signed_update: str | None,
        now: float,
    ) -> BundleRecord:
        """Compare-and-set: store the bundle only if ``sequence`` is strictly above the stored one.

        Otherwise raise ``StaleBundleSequence`` and store nothing. Every accepted bundle is also
        appended to the history. Topic ``bundle:<trust_domain>``.
        """
        ...

    async def get_bundle(self, trust_domain: str) -> BundleRecord | None:
        """The current bundle of ``trust_domain``, or ``None``."""
        ...

    async def list_bundles(self) -> list[BundleRecord]:
        """The current bundle of every trust domain, ordered by trust domain."""
        ...

    async def bundle_history(self, trust_domain: str, limit: int = 10) -> list[BundleRecord]:
        """Accepted bundles of ``trust_domain``, newest first (the last rotations)."""
        ...

    # -- health reports / leases ---------------------------------------------------------------

    async def record_report(self, cluster: str, report: JsonDocument, received_at: float) -> None:
        """Replace the cluster's latest report (one upsert, no history): renews its lease.

        Topic ``report:<cluster>``. Cheap enough for 1,000 gateways at 1 report/s: reports
        that arrive while one commits are group-committed together in the next transaction
        (no added delay); each call returns once its own report is durable, and a failed batch
        raises in every caller of that batch.
        """
        ...

    async def record_reports(self, reports: Sequence[tuple[str, JsonDocument, float]]) -> None:
        """:meth:`record_report` of every ``(cluster, report, received_at)``, in order, in ONE
        batch of the same group commit (for a cluster given twice the later one wins). Returns
        once all are durable; raises (nothing stored) if the batch failed or any item is
        invalid. An empty sequence stores nothing."""
        ...

    async def get_report(self, cluster: str) -> ReportRecord | None:
        """The cluster's latest report, or ``None``."""
        ...

    async def list_reports(self) -> list[ReportRecord]:
        """The latest report of every cluster that ever reported, ordered by cluster."""
        ...

    async def read_world(self) -> WorldRecords:
        """:meth:`list_clusters`, :meth:`list_reports` and :meth:`list_bundles` together, read
        in ONE transaction (one round trip, one consistent view): what a snapshot rebuild
        plans from."""
        ...

    # -- snapshots -----------------------------------------------------------------------------

    async def put_snapshot(self, cluster: str, document: JsonDocument, now: float) -> int:
        """Store a new snapshot for ``cluster`` and return its version.

        Versions are assigned by the store: 1 for the first, then strictly increasing per
        cluster (across replicas). Topic ``snapshot:<cluster>``.
        """
        ...

    async def put_snapshots(
        self,
        documents: Mapping[str, JsonDocument | SplitJsonObject | ComposedJsonObject],
        now: float,
    ) -> dict[str, int]:
        """Store a new snapshot for every cluster in ``documents`` in ONE transaction (all or
        none) and return each cluster's new version, numbered as by :meth:`put_snapshot`.

        What a rebuild that changes many snapshots calls: one write (one commit, one thread
        hop) instead of one per cluster. A document may be a
        :class:`~federation.store.documents.SplitJsonObject`: its shared tail (the bundle
        section every snapshot of a rebuild carries) is stored once per distinct text, and
        :meth:`get_snapshot` returns ``head + tail``; likewise a
        :class:`~federation.store.composed.ComposedJsonObject`'s shared texts are stored once
        each and :meth:`get_snapshot` returns its joined text and its ``digest``. An empty
        mapping stores nothing and returns ``{}``. Raises ``InvalidDocument`` (nothing stored)
        if any name or document is invalid. Topic ``snapshot:<cluster>`` for each.
        """
        ...

    async def get_snapshot(self, cluster: str) -> SnapshotRecord | None:
        """The cluster's latest snapshot, or ``None``."""
        ...

    async def get_snapshot_parts(self, cluster: str) -> SnapshotRecord | ComposedSnapshot | None:
        """:meth:`get_snapshot`, but a snapshot stored as a ``ComposedJsonObject`` comes as a
        :class:`~federation.store.records.ComposedSnapshot`: its parts, whose slices refer to
        shared texts this store reads once and hands out as the same objects while they are
        current (a replica following a rebuild of N snapshots reads each shared text once,
        not N times). Equal ``document`` to :meth:`get_snapshot`'s."""
        ...

    async def get_snapshots_parts(
        self, clusters: Sequence[str]
    ) -> dict[str, SnapshotRecord | ComposedSnapshot]:
        """:meth:`get_snapshot_parts` of every one of ``clusters`` that has a snapshot, in ONE
        read (a replica following a rebuild reads its N new snapshots together)."""
        ...

    async def record_ack(
        self, cluster: str, version: int, ok: bool, error: str | None, at: float
    ) -> None:
        """Record a gateway's ACK (``ok``) or NACK (``error`` says why) of ``version``.

        An ACK raises ``acked_version`` (never lowers it); a NACK replaces the last NACK.
        Topic ``ack:<cluster>``. Group-committed like :meth:`record_report` (answers of one
        batch are applied in arrival order).
        """
        ...

    async def record_acks(self, acks: Sequence[tuple[str, int, bool, str | None, float]]) -> None:
        """:meth:`record_ack` of every ``(cluster, version, ok, error, at)``, applied in order,
        in ONE batch of the same group commit. Returns once all are durable; raises (nothing
        stored) if the batch failed or any item is invalid. An empty sequence stores nothing."""
        ...

    async def get_ack_state(self, cluster: str) -> AckState:
        """ACK/NACK state of the cluster (all zero / ``None`` if it never answered)."""
        ...

    # -- declared services (placement policies) ------------------------------------------------

    async def put_service(self, name: str, policy: JsonDocument, now: float) -> None:
        """Insert or replace a declared service. Topic ``service:<name>``."""
        ...

    async def delete_service(self, name: str) -> bool:
        """Delete a service; ``True`` if it existed. Topic ``service:<name>`` when it did."""
        ...

    async def list_services(self) -> list[ServiceRecord]:
        """Every declared service, ordered by name."""
        ...

    # -- placement decisions -------------------------------------------------------------------

    async def put_decisions(self, decisions: Mapping[str, JsonDocument], now: float) -> None:
        """Replace the whole set of placement decisions atomically (services absent are removed).

        Topic ``decision``.
        """
        ...

    async def list_decisions(self) -> list[DecisionRecord]:
        """The current decision of every service, ordered by service name."""
        ...

    # -- cluster recoveries (failback windows) ------------------------------------------------

    async def record_recovery(self, cluster: str, at: float) -> None:
        """Remember that ``cluster``'s lease went ``unreachable -> healthy`` at ``at``,
        replacing its previous recovery. Written by the leader once per transition (never per
        report), read by the next leader so ``failback_after`` windows survive a leader change.
        Raises ``InvalidDocument`` for a bad name or time. Topic ``recovery:<cluster>``.
        """
        ...

    async def list_recoveries(self) -> dict[str, float]:
        """The last recovery time of every cluster that ever recovered (``{cluster: at}``)."""
        ...

    # -- events (timeline) ---------------------------------------------------------------------

    async def append_event(self, kind: str, subject: str, detail: JsonDocument, at: float) -> int:
        """Append a timeline event and return its id (rising in commit order). Topic ``event``."""
        ...

    async def append_events(
        self, events: Sequence[tuple[str, str, JsonDocument, float]]
    ) -> list[int]:
        """Append many ``(kind, subject, detail, at)`` events in ONE transaction (all or none,
        e.g. a lease storm's transitions) and return their ids, in order. Topic ``event``.
        Raises ``InvalidDocument`` (nothing stored) if any is invalid."""
        ...

    async def list_events(self, after_id: int = 0, limit: int = 100) -> list[EventRecord]:
        """Events with ``id > after_id``, oldest first, at most ``limit``."""
        ...

    # -- retention ---------------------------------------------------------------------------

    async def prune(self, *, events_before: float, tokens_before: float) -> PruneCounts:
        """Delete timeline events with ``at < events_before`` and join tokens used before
        ``tokens_before`` or expired before it (with their change-feed topics), in one
        transaction. Announces no change (nothing anyone watches is removed). Run by the
        leader's maintenance loop; cheap when there is nothing to delete."""
        ...

    # -- change feed ---------------------------------------------------------------------------

    def changes(self) -> AbstractAsyncContextManager[AsyncIterator[Change]]:
        """Subscribe to changes made by *any* replica on this database.

        ``async with store.changes() as feed: async for change in feed: ...``. Every change
        committed after the ``async with`` is entered is delivered, ``seq`` ascending. Pending
        changes are coalesced per topic (a slow reader sees the latest ``seq`` of a topic once,
        never an unbounded backlog), so readers must treat a change as "re-read this topic".
        After a reconnect of the PostgreSQL listener, missed changes are replayed from
        :meth:`changes_since`. The iterator never ends on its own; leave the block to stop.
        """
        ...

    async def changes_since(self, seq: int) -> list[Change]:
        """The latest change of every topic with ``seq`` above the given one, ascending."""
        ...

    async def current_change_seq(self) -> int:
        """The highest committed change ``seq`` (0 on an empty database)."""
        ...

    # -- leader election -----------------------------------------------------------------------

    async def run_as_leader(
        self, name: str, work: LeaderWork, *, retry_interval: float = 0.5
    ) -> None:
        """Campaign for leadership ``name`` and run ``work()`` only while leader.

        Blocks while another replica leads (retrying every ``retry_interval`` seconds). While
        leader, runs ``work``; if leadership is lost (PostgreSQL: the connection holding the
        advisory lock broke) ``work`` is cancelled and the campaign starts again. Returns when
        ``work`` returns (releasing leadership); an exception from ``work`` releases leadership
        and propagates. Cancel the caller to stop campaigning. SQLite: leader at once within
        the process (one leader per name and database file among the process's stores).
        """
        ...
