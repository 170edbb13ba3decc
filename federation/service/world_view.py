"""The snapshot leader's copy of what a rebuild plans from: clusters, reports, bundles (sans-IO).

A rebuild used to read the whole world from the store (``Store.read_world``: 35–50 ms in a
worker thread at 1,000 clusters) even when one cluster's health report was all that changed,
and every push of that flip waited for it. :class:`WorldView` keeps the records of the last
whole read and is kept current by what the leader learns anyway:

- a report stored by this replica (:meth:`stored`: the publisher is told right after the
  commit, with the text and the arrival time the store was given);
- a report stored by another replica (its change-feed notice makes the cluster pending; the
  publisher reads that cluster's report and hands it here, :meth:`stored` again);
- anything else a snapshot depends on — a cluster joined or changed, a bundle — makes the view
  incomplete (:meth:`invalidate`): the next rebuild reads the world whole (:meth:`replace`),
  as does a replica that just became leader.

Of two records of one cluster the later ``received_at`` wins, so a store read that raced a
report noted here never moves a cluster back. Parsed reports are cached by their text, so a
report is parsed once however many rebuilds read it, its routing key (``report_key``) computed
once, and a cluster's :class:`MemberView` is kept while its registration and routing key are
(at 1,000 clusters building them all again was ~5 ms per rebuild, their keys ~9 ms).
"""

from __future__ import annotations

from collections.abc import Iterable

from federation.model.api import HealthReport
from federation.service.served import member_key, report_key
from federation.service.snapshots import MemberView
from federation.store import BundleRecord, ClusterRecord, ReportRecord, WorldRecords

#: ``report_key`` of a report: what of it a snapshot can show
ReportKey = tuple[object, ...]


class WorldView:
    """Clusters, latest reports and bundles as of the last whole read plus every report noted
    since. ``complete`` is False until the first :meth:`replace` and after :meth:`invalidate`."""

    def __init__(self) -> None:
        self.clusters: list[ClusterRecord] = []
        self.bundles: list[BundleRecord] = []
        self.reports: dict[str, ReportRecord] = {}
        self.complete = False
        #: cluster -> (report text, parsed, its key): a report is parsed once, whoever reads it
        self._parsed: dict[str, tuple[str, HealthReport, ReportKey]] = {}
        #: cluster -> (its record, its services' routing key, member, the member's world key)
        self._members: dict[str, tuple[ClusterRecord, object, MemberView, tuple[object, ...]]] = {}

    def replace(self, world: WorldRecords) -> None:
        """A whole read of the store: it is the view now (reports noted meanwhile that are
        later than the read's are kept)."""
        noted = self.reports
        self.clusters = world.clusters
        self.bundles = world.bundles
        self.reports = {record.cluster: record for record in world.reports}
        for cluster, record in noted.items():
            read = self.reports.get(cluster)
            if read is None or record.received_at > read.received_at:
                self.reports[cluster] = record
        self.complete = True

    def invalidate(self) -> None:
        """Something besides a report changed (a cluster, a bundle): read whole next time."""
        self.complete = False

    def stored(
        self,
        record: ReportRecord,
        report: HealthReport | None = None,
        key: ReportKey | None = None,
    ) -> None:
        """``record`` is in the store (stored here, or read back after another replica stored
        it); ``report`` is its text parsed and ``key`` its ``report_key``, if the caller has
        them. An earlier record than the one known is ignored."""
        known = self.reports.get(record.cluster)
        if known is not None and known.received_at > record.received_at:
            return
        self.reports[record.cluster] = record
        if report is not None:
            parsed = (report, report_key(report) if key is None else key)
            self._parsed[record.cluster] = (record.report, *parsed)

    def stored_all(self, records: Iterable[ReportRecord]) -> None:
        for record in records:
            self.stored(record)

    def parse(self, record: ReportRecord) -> tuple[HealthReport, ReportKey]:
        """``record``'s report and its ``report_key``, both made once per distinct text."""
        cached = self._parsed.get(record.cluster)
        if cached is not None and cached[0] == record.report:
            return cached[1], cached[2]
        report = HealthReport.model_validate_json(record.report)
        key = report_key(report)
        self._parsed[record.cluster] = (record.report, report, key)
        return report, key

    def member(
        self, cluster: ClusterRecord, report: HealthReport | None, key: ReportKey | None
    ) -> tuple[MemberView, tuple[object, ...]]:
        """``cluster`` as a rebuild sees it, and its part of the world key (``member_key``):
        the same objects as last time while its record and its services' routing key are
        (a snapshot depends on nothing else of a report's services)."""
        routing = key[0] if key is not None else ()
        kept = self._members.get(cluster.name)
        if kept is not None and kept[0] is cluster and kept[1] == routing:
            return kept[2], kept[3]
        services = report.services if report is not None else ()
        member = MemberView(
            cluster.name,
            cluster.trust_domain,
            cluster.locality,
            cluster.gateway_addresses,
            services,
        )
        made = (member, member_key(member, routing))
        self._members[cluster.name] = (cluster, routing, *made)
        return made
