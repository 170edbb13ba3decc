"""Keeps every cluster's snapshot current and wakes the gateways watching it.

:class:`SnapshotPublisher` is the trio edge around the pure cores in
:mod:`federation.service.leases` and :mod:`federation.service.snapshots`: when something changed
(:meth:`mark_dirty`) or a lease is about to expire, it reads the store, plans new snapshots,
stores those whose content changed (the store assigns their versions) and wakes watchers.

With several replicas on one database, only the elected leader builds (and so expires leases);
every replica follows the store's change feed and serves the snapshots it learns of. Steady
reports that only renew live leases cost no rebuild. A store error during a build is logged and
retried; it never takes the service down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import trio

from federation.model.api import HealthReport, LeaseState
from federation.service.lease_times import LeaseTimes
from federation.service.leases import (
    DEFAULT_MISSED_INTERVALS,
    LeaseInput,
    Reachability,
    assess_reachability,
)
from federation.service.maintenance import Retention, run_maintenance
from federation.service.metrics import FederationMetrics
from federation.service.placement_loop import DEFAULT_PLACEMENT_DEBOUNCE_S, PlacementLoop
from federation.service.rebuild_pacing import JoinPacer
from federation.service.served import ServedSnapshot, report_key, world_key
from federation.service.serving import ServedSet
from federation.service.snapshot_bytes import (
    EncodedContent,
    SnapshotEncoder,
)
from federation.service.snapshot_plan import RebuildInput, SnapshotPlanner, plan_and_encode
from federation.service.snapshots import MemberView
from federation.service.stored_snapshots import StoredSnapshots
from federation.service.world_view import ReportKey, WorldView
from federation.store import (
    JsonDocument,
    ReportRecord,
    Store,
    StoreError,
)

#: Store change topics after which the leader rebuilds everything.
_REBUILD_TOPICS = frozenset({"cluster", "bundle"})
#: Leader-election name of the replica that builds snapshots and expires leases.
LEADER_NAME = "isthmus-federation-snapshots"
_RETRY_S = 0.5
#: Up to this many clusters whose new reports came through another replica are read one by one
#: before a rebuild; more, and all reports are read in one call.
_FEW_REMOTE_REPORTS = 8
#: How long a new leader holds its first snapshot build for the placement loop's first plan.
DEFAULT_FIRST_PLAN_TIMEOUT_S = 2.0
#: Fleets up to this size are planned on the event loop (see ``_rebuild``), larger in a thread.
INLINE_PLAN_MEMBERS = 2000
_log = logging.getLogger(__name__)


class SnapshotPublisher:
    """Owner of the served snapshots. Run :meth:`run` in a nursery with ``nursery.start``."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float],
        interval_s: float,
        missed_intervals: int = DEFAULT_MISSED_INTERVALS,
        debounce_s: float = 0.005,
        metrics: FederationMetrics | None = None,
        placement_debounce_s: float = DEFAULT_PLACEMENT_DEBOUNCE_S,
        first_plan_timeout_s: float = DEFAULT_FIRST_PLAN_TIMEOUT_S,
        retention: Retention | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._interval_s = interval_s
        self._missed = missed_intervals
        self._debounce_s = debounce_s
        self._first_plan_timeout_s = first_plan_timeout_s
        self._retention = retention or Retention()
        self._metrics = metrics or FederationMetrics()
        #: what this replica serves; streams and long polls read and watch it
        self.served = ServedSet()
        self.current = self.served.current
        self.wait_newer = self.served.wait_newer
        self.watching = self.served.watching
        self._local: dict[str, tuple[float, HealthReport, ReportKey]] = {}
        self._dirty = trio.Event()
        #: set by a report received here that changes what a snapshot shows: no debounce
        self._urgent = trio.Event()
        #: what rebuilds plan from, kept current without reading the whole store each time
        self._world = WorldView()
        self.lease_times = LeaseTimes(interval_s=interval_s, missed_intervals=missed_intervals)
        self._content: dict[str, object] = {}
        self._pending_reports: set[str] = set()
        #: clusters whose report was stored and noted here: the feed's echo of that write
        #: needs no store read (``_only_renewals`` read all N reports for it, ~10 % of the CPU)
        self._echoes: set[str] = set()
        self._full = True
        self.reachability = Reachability({})
        self.leading = False
        self._last_world: object = None
        #: the placement engine's loop (leader only); its traffic replaces the simple rule
        self.placement = PlacementLoop(
            store,
            clock=clock,
            request_rebuild=self.request_rebuild,
            debounce_s=placement_debounce_s,
        )
        self._encoder = SnapshotEncoder()
        self._planner = SnapshotPlanner()
        #: snapshots read back from the store (load, other replicas' rebuilds)
        self._stored = StoredSnapshots(store)
        self._rebuilding = trio.Lock()
        #: holds join-triggered rebuilds until a burst of joins pauses (bounded)
        self.join_pacer = JoinPacer()

    def mark_dirty(self) -> None:
        """Something the snapshots depend on changed: rebuild soon."""
        self._dirty.set()

    def request_rebuild(self) -> None:
        """Rebuild every snapshot soon (a new placement plan was stored)."""
        self._full = True
        self._dirty.set()

    def note_report(
        self,
        cluster: str,
        received_at: float,
        report: HealthReport | None = None,
        raw: str | None = None,
    ) -> None:
        """A report was stored here (the change feed also tells the leader of any replica).
        Passing the parsed ``report`` spares the leader a store read to classify it (and one
        that changes what a snapshot shows is built for at once, without the debounce), and
        its stored text ``raw`` spares the next rebuild parsing it again."""
        self._renewed(cluster, received_at)
        if report is not None:
            key = report_key(report)
            self._local[cluster] = (received_at, report, key)
            self._echoes.add(cluster)
            if self._shows_change(cluster, key):
                self._urgent.set()
            if raw is not None:  # stored: the next rebuild needs no store read for it
                self._world.stored(ReportRecord(cluster, received_at, raw), report, key)
        self._pending_reports.add(cluster)
        self.mark_dirty()

    def _shows_change(self, cluster: str, key: ReportKey) -> bool:
        """Whether a report whose ``report_key`` is ``key`` changes a snapshot: its
        routing-relevant content differs from the last built, or its cluster was judged down."""
        changed = self._content.get(cluster) != key
        return changed or not self.reachability.is_up(cluster)

    def note_arrival(self, cluster: str, at: float) -> None:
        """A report of ``cluster`` arrived at ``at``, stored or not (:meth:`LeaseTimes.arrived`)."""
        self.lease_times.arrived(cluster, at)

    async def load(self) -> None:
        """Read what the store serves now, so a restart keeps versions and digests."""
        names = [record.name for record in await self._store.list_clusters()]
        self.served.load(await self._stored.read(names))

    def _deliver_stored(self, cluster: str, served: ServedSnapshot) -> None:
        """Another replica stored a new snapshot of ``cluster`` (newer, or lower after a store
        reset): serve it here too, unless this replica leads now (it serves what it builds)."""
        current = self.served.current(cluster)
        if not self.leading and (current is None or served.version != current.version):
            self.served.publish(cluster, served)

    def _stamp(
        self, content: EncodedContent, version: int, at: float, digest: str
    ) -> ServedSnapshot:
        """The served form of ``content`` at ``version`` (its bytes built when first asked)."""
        return ServedSnapshot(version, digest, None, at, content=content)

    async def _refresh_world(self, pending: set[str] | None) -> None:
        """Bring the world view up to date. ``pending``: the clusters whose reports are all
        that changed since the view was last current (``None``: unknown, read it whole).
        Reports stored here are in the view already; those that came through another replica
        are read, and only those: a one-cluster health flip reads nothing from the store."""
        view = self._world
        if pending is None or not view.complete:
            view.replace(await self._store.read_world())  # one transaction, one thread hop
            return
        remote = sorted(cluster for cluster in pending if not self._in_view(cluster))
        if len(remote) > _FEW_REMOTE_REPORTS:
            view.stored_all(await self._store.list_reports())
            return
        for cluster in remote:
            record = await self._store.get_report(cluster)
            if record is not None:
                view.stored(record)

    def _in_view(self, cluster: str) -> bool:
        """Whether the world view holds the report of ``cluster`` noted here last (a report
        noted without its text is not in it)."""
        local = self._local.get(cluster)
        record = self._world.reports.get(cluster)
        return local is not None and record is not None and record.received_at >= local[0]

    async def _read_world(
        self, pending: set[str] | None = None
    ) -> tuple[list[MemberView], list[tuple[object, ...]], dict[str, LeaseInput], list[Any]]:
        """The members (and each one's part of the world key), lease inputs and bundles."""
        await self._refresh_world(pending)
        view = self._world
        reports, bundles = view.reports, view.bundles
        members, keys, leases = [], [], {}
        for count, cluster in enumerate(view.clusters):
            if count % 100 == 99:  # parsing 1,000 reports must not hold the loop for long
                await trio.lowlevel.checkpoint()
            record = reports.get(cluster.name)
            report, key = view.parse(record) if record is not None else (None, None)
            member, member_key = view.member(cluster, report, key)
            members.append(member)
            keys.append(member_key)
            leases[cluster.name] = LeaseInput(
                self.lease_times.start(record.received_at) if record is not None else None,
                report.peers if report is not None else (),
            )
            if key is not None:
                self._content[cluster.name] = key
        return members, keys, leases, bundles

    async def _assess(
        self, pending: set[str] | None = None
    ) -> tuple[list[MemberView], list[tuple[object, ...]], list[Any], float]:
        """Bring the world up to date (``pending``: see :meth:`_refresh_world`), judge every
        lease, hand the states to the placement loop and record lease transitions. Returns the
        members, their world-key parts, the bundles and the time of the verdicts."""
        members, keys, leases, bundles = await self._read_world(pending)
        # The reports noted here are in the world now; one left would later pass for the
        # latest of a cluster whose newer report came through another replica.
        if pending is None:
            self._local.clear()
        else:
            for cluster in pending:
                self._local.pop(cluster, None)
        leases = self.lease_times.with_arrivals(leases)  # no checkpoint between this and now
        now = self._clock()
        self.lease_times.judged(leases)
        before = self.reachability.states
        self.reachability = assess_reachability(
            leases, now=now, interval_s=self._interval_s, missed_intervals=self._missed
        )
        self._metrics.set_cluster_states(self.reachability.states)
        self.placement.note_states(self.reachability.states, now)
        await self._record_lease_changes(before, now)
        return members, keys, bundles, now

    async def rebuild(self, pending: set[str] | None = None) -> int:
        """Plan and store new snapshots; wake watchers. Returns how many clusters changed.

        ``pending``: the clusters whose new reports are all that changed since the last
        rebuild, as the leader's loop knows them (then only those of them that came through
        another replica are read from the store); ``None`` (the default): read the world whole.
        Cheap when nothing that matters changed (steady reports only renew leases): the plan is
        skipped if members, lease states, links and bundles equal those of the last build.
        One rebuild at a time (the planner's caches are not shared between threads)."""
        async with self._rebuilding:
            return await self._rebuild(pending)

    async def _rebuild(self, pending: set[str] | None) -> int:
        members, keys, bundles, now = await self._assess(pending)
        generation = self.placement.traffic.generation
        world = world_key(members, self.reachability, bundles, generation, keys)
        if world == self._last_world:
            return 0
        trust = {b.trust_domain: b.bundle for b in bundles}
        updates = {b.trust_domain: b.signed_update for b in bundles if b.signed_update}
        plan = partial(
            plan_and_encode,
            self._planner,
            self._encoder,
            RebuildInput(members, self.reachability, trust, updates, self.placement.traffic),
            self.served.digests(),
        )
        # Pure work on inputs nobody mutates. Up to INLINE_PLAN_MEMBERS, on the event loop:
        # ~27 ms of CPU at 1,000, which in a worker thread took 70-90 ms (the thread gets the
        # GIL every other switch interval while the loop serves 1,000 reports/s), and every
        # push waits for it. A larger fleet's plan goes to a thread, not to stall the loop.
        if len(members) <= INLINE_PLAN_MEMBERS:
            changed = plan()
        else:
            changed = await trio.to_thread.run_sync(plan)
        # Stored in ONE transaction, each shared text once (peer list, weights, bundles);
        # served without copying anything per cluster (bytes are built when a watcher asks).
        documents = {name: item.encoded.document for name, item in changed.items()}
        versions = await self._store.put_snapshots(documents, now)
        for name, version in versions.items():
            content, digest = changed[name].encoded.content, changed[name].routing.digest
            self.served.publish(name, self._stamp(content, version, now, digest))
        self._last_world = world
        return len(changed)

    async def _record_lease_changes(self, before: Mapping[str, LeaseState], now: float) -> None:
        """Timeline events for lease transitions (``lease``: cluster, from, to)."""
        events: list[tuple[str, str, JsonDocument, float]] = [
            ("lease", cluster, {"from": previous, "to": state}, now)
            for cluster, state in sorted(self.reachability.states.items())
            if (previous := before.get(cluster)) is not None and previous != state
        ]
        await self._store.append_events(events)  # one write for a whole lease storm

    def _renewed(self, cluster: str, at: float) -> None:
        self.lease_times.renewed(cluster, at, self.reachability.is_up)

    def _seconds_to_next_expiry(self) -> float:
        return self.lease_times.seconds_to_next_expiry(self.reachability, self._clock())

    async def _follow(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Learn of every change, from any replica: serve new snapshots, and (as leader)
        rebuild when clusters, reports or bundles change."""
        async with self._store.changes() as feed:
            task_status.started()
            async for change in feed:
                if change.kind == "snapshot" and not self.leading:  # the leader wrote it
                    self._stored.note(change.subject)  # read with the others of its rebuild
                elif change.kind == "report":
                    if change.subject in self._echoes:  # this replica's own write, noted
                        self._echoes.discard(change.subject)
                        continue
                    self._pending_reports.add(change.subject)
                    self._dirty.set()
                elif change.kind in _REBUILD_TOPICS:
                    if change.kind == "cluster":
                        self.join_pacer.note_join()
                    self._world.invalidate()
                    self._full = True
                    self._dirty.set()

    async def _only_renewals(self, clusters: set[str]) -> bool:
        """Whether the new reports of ``clusters`` only renew live leases (nothing a snapshot
        shows changed): then no rebuild is needed. The steady state of 1 report/s per gateway."""
        if any(not self.reachability.is_up(cluster) for cluster in clusters):
            return False
        latest: dict[str, tuple[float, HealthReport, ReportKey]] = {}
        remote = [cluster for cluster in clusters if cluster not in self._local]
        if remote:  # received by another replica: read them, in one store call
            try:
                records = {r.cluster: r for r in await self._store.list_reports()}
            except StoreError:
                return False
            self._world.stored_all(records.values())
            for cluster in remote:
                record = records.get(cluster)
                if record is None:
                    return False
                latest[cluster] = (record.received_at, *self._world.parse(record))
        for cluster in clusters:  # the reports noted here stay until a rebuild has read them
            received_at, _, key = latest.get(cluster) or self._local[cluster]
            if self._content.get(cluster) != key:
                return False
            known = self.lease_times.report_times.get(cluster, 0.0)
            self._renewed(cluster, max(received_at, known))
        for cluster in clusters:
            self._local.pop(cluster, None)
        return True

    async def _rebuild_or_retry(self, pending: set[str] | None = None) -> None:
        """A store outage must not take the service down: log, and try again shortly (a
        whole rebuild: what the failed one had to read is not kept)."""
        try:
            await self.rebuild(pending)
        except StoreError as err:
            _log.warning("snapshot rebuild failed, retrying in %.1fs: %s", _RETRY_S, err)
            await trio.sleep(_RETRY_S)
            self._world.invalidate()
            self._full = True
            self._dirty.set()

    async def _lead(self) -> None:
        """The leader's work: the placement loop and the maintenance loop (retention,
        :mod:`federation.service.maintenance`) beside the snapshot loop, until cancelled.

        On taking over, lease states are judged first and handed to the placement loop, which
        plans once before the first snapshot is built: snapshots never fall back to the simple
        rule for a declared service just because leadership moved (a cluster inside its
        failback window stays without traffic). The wait is bounded by
        ``first_plan_timeout_s`` (store errors): then snapshots are built anyway, logged."""
        self.leading = True
        self.lease_times.leading_since = self._clock()
        self._world.invalidate()  # what changed while following was not all noted here
        try:
            states_known = await self._assess_before_planning()
            async with trio.open_nursery() as nursery:
                await nursery.start(run_maintenance, self._store, self._clock, self._retention)
                await nursery.start(self.placement.lead)
                if states_known:
                    await self._wait_first_plan()
                await self._lead_snapshots()
        finally:
            self.leading = False

    async def _assess_before_planning(self) -> bool:
        """The new leader's first lease verdicts, for the placement loop's first plan. False
        (logged) if the store cannot be read: the first build then hands them over itself."""
        try:
            await self._assess()
        except StoreError as err:
            _log.warning("cannot judge leases before the first plan, building anyway: %s", err)
            return False
        return True

    async def _wait_first_plan(self) -> None:
        if not await self.placement.wait_first_plan(self._first_plan_timeout_s):
            _log.warning(
                "no placement plan %.1fs after taking leadership; building snapshots without "
                "one (declared services use the simple rule until it is stored)",
                self._first_plan_timeout_s,
            )

    async def _lead_snapshots(self) -> None:
        """The leader's loop: rebuild on every change or lease deadline, until cancelled."""
        self._last_world = None
        await self._rebuild_or_retry()
        while True:
            with trio.move_on_after(self._seconds_to_next_expiry()) as timer:
                await self._dirty.wait()
                with trio.move_on_after(self._debounce_s):  # coalesce a burst into one build,
                    await self._urgent.wait()  # unless a report changes what a snapshot shows
            await self.join_pacer.settle()  # a burst of joins: one rebuild after it
            self._dirty = trio.Event()
            self._urgent = trio.Event()
            pending, self._pending_reports = self._pending_reports, set()
            full, self._full = self._full, False
            if timer.cancelled_caught or full or not await self._only_renewals(pending):
                started = trio.current_time()
                await self._rebuild_or_retry(pending)
                self.join_pacer.last_rebuild_s = trio.current_time() - started

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Load what the store serves, follow the change feed, and campaign for leadership:
        exactly one replica builds snapshots and expires leases at a time (the store's leader
        election); every replica serves watches. ``started`` once the feed is followed.
        Never returns; cancel the enclosing nursery to stop."""
        await self.load()
        async with trio.open_nursery() as nursery:
            await nursery.start(self._follow)
            nursery.start_soon(self._stored.follow, self._deliver_stored)
            nursery.start_soon(self._store.run_as_leader, LEADER_NAME, self._lead)
            task_status.started()
