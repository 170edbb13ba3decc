"""Keeps every cluster's snapshot current and wakes the gateways watching it.

:class:`SnapshotPublisher` is the trio edge around the pure cores in
:mod:`federation.service.leases` and :mod:`federation.service.snapshots`: when something changed
(:meth:`mark_dirty`) or a lease is about to expire, it reads the store, plans new snapshots,
stores those whose content changed (the store assigns their versions) and wakes watchers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import trio

from federation.model.api import HealthReport, LeaseState, Snapshot
from federation.service.leases import (
    DEFAULT_MISSED_INTERVALS,
    LeaseInput,
    Reachability,
    assess_reachability,
    next_lease_expiry,
)
from federation.service.metrics import FederationMetrics
from federation.service.snapshots import (
    MemberView,
    plan_snapshots,
    snapshot_digest,
    with_version,
)
from federation.store import ReportRecord, Store

#: Wake slightly after a lease deadline: leases expire strictly after it.
_EXPIRY_SLACK_S = 0.001


@dataclass(frozen=True)
class ServedSnapshot:
    """A stored snapshot as served: its version, content digest and encoded body."""

    version: int
    digest: str
    body: bytes
    created_at: float


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
    ) -> None:
        self._store = store
        self._clock = clock
        self._interval_s = interval_s
        self._missed = missed_intervals
        self._debounce_s = debounce_s
        self._metrics = metrics or FederationMetrics()
        self._served: dict[str, ServedSnapshot] = {}
        self._changed = trio.Event()
        self._dirty = trio.Event()
        self._reports: dict[str, tuple[str, HealthReport]] = {}
        self._report_times: dict[str, float] = {}
        self._content: dict[str, str] = {}
        self.reachability = Reachability({})

    def mark_dirty(self) -> None:
        """Something the snapshots depend on changed: rebuild soon."""
        self._dirty.set()

    def note_report(self, cluster: str, received_at: float, report: HealthReport) -> None:
        """A report arrived. Rebuild only if it changes content or revives the lease: steady
        reports every second must stay cheap."""
        key = report.model_dump_json(include={"services", "peers"})
        was_up = self.reachability.is_up(cluster)
        self._report_times[cluster] = received_at
        if self._content.get(cluster) != key or not was_up:
            self._content[cluster] = key
            self.mark_dirty()

    def current(self, cluster: str) -> ServedSnapshot | None:
        return self._served.get(cluster)

    def lease(self, cluster: str) -> LeaseState:
        return self.reachability.states.get(cluster, "pending")

    async def wait_newer(self, cluster: str, after: int, timeout_s: float) -> ServedSnapshot | None:
        """The cluster's snapshot as soon as its version differs from ``after`` (newer, or lower
        after a store reset), or ``None`` after ``timeout_s``. Cancellation just stops waiting."""
        with trio.move_on_after(timeout_s):
            while True:
                changed = self._changed
                served = self._served.get(cluster)
                if served is not None and served.version != after:
                    return served
                await changed.wait()
        return None

    async def load(self) -> None:
        """Read what the store serves now, so a restart keeps versions and digests."""
        for record in await self._store.list_clusters():
            stored = await self._store.get_snapshot(record.name)
            if stored is not None:
                self._served[record.name] = self._stamp(
                    Snapshot.model_validate_json(stored.document), stored.version, stored.created_at
                )

    def _stamp(self, content: Snapshot, version: int, at: float) -> ServedSnapshot:
        snapshot = with_version(content, version)
        body = snapshot.model_dump_json().encode()
        return ServedSnapshot(version, snapshot_digest(content), body, at)

    def _parse(self, record: ReportRecord) -> HealthReport:
        cached = self._reports.get(record.cluster)
        if cached is not None and cached[0] == record.report:
            return cached[1]
        report = HealthReport.model_validate_json(record.report)
        self._reports[record.cluster] = (record.report, report)
        return report

    async def rebuild(self) -> int:
        """Plan and store new snapshots; wake watchers. Returns how many clusters changed."""
        clusters = await self._store.list_clusters()
        reports = {r.cluster: r for r in await self._store.list_reports()}
        bundles = await self._store.list_bundles()
        now = self._clock()
        members, leases = [], {}
        for cluster in clusters:
            record = reports.get(cluster.name)
            report = self._parse(record) if record is not None else None
            services = report.services if report is not None else ()
            members.append(
                MemberView(
                    cluster.name,
                    cluster.trust_domain,
                    cluster.locality,
                    cluster.gateway_addresses,
                    services,
                )
            )
            leases[cluster.name] = LeaseInput(
                record.received_at if record is not None else None,
                report.peers if report is not None else (),
            )
            if record is not None:
                self._report_times[cluster.name] = max(
                    record.received_at, self._report_times.get(cluster.name, 0.0)
                )
        self.reachability = assess_reachability(
            leases, now=now, interval_s=self._interval_s, missed_intervals=self._missed
        )
        self._metrics.set_cluster_states(self.reachability.states)
        changed = plan_snapshots(
            members,
            self.reachability,
            {b.trust_domain: b.bundle for b in bundles},
            {b.trust_domain: b.signed_update for b in bundles if b.signed_update},
            {name: served.digest for name, served in self._served.items()},
        )
        for name, content in changed.items():
            version = await self._store.put_snapshot(name, content.model_dump_json(), now)
            self._served[name] = self._stamp(content, version, now)
        if changed:
            woken, self._changed = self._changed, trio.Event()
            woken.set()
        return len(changed)

    def _seconds_to_next_expiry(self) -> float:
        now = self._clock()
        deadline = next_lease_expiry(
            (at for name, at in self._report_times.items() if self.reachability.is_up(name)),
            now=now,
            interval_s=self._interval_s,
            missed_intervals=self._missed,
        )
        return math.inf if deadline is None else max(0.0, deadline - now) + _EXPIRY_SLACK_S

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Load, build once, signal readiness, then rebuild on every change or lease deadline.
        Never returns; cancel the enclosing nursery to stop."""
        await self.load()
        await self.rebuild()
        task_status.started()
        while True:
            with trio.move_on_after(self._seconds_to_next_expiry()):
                await self._dirty.wait()
                await trio.sleep(self._debounce_s)  # coalesce a burst of reports into one build
            self._dirty = trio.Event()
            await self.rebuild()
