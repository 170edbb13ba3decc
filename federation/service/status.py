"""``isthmus status``: every cluster's lease, bundle and snapshot state, read from the store."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError

from federation.model.api import ClusterStatus, FederationStatus, HealthReport
from federation.service.leases import LeaseInput, assess_reachability
from federation.service.served import ServedSnapshot
from federation.store import ReportRecord, Store
from federation.trust import BundleError, parse_bundle


async def federation_status(
    store: Store,
    served: Callable[[str], ServedSnapshot | None],
    *,
    now: float,
    interval_s: float,
    missed_intervals: int,
) -> FederationStatus:
    """Every cluster with its lease (judged at ``now`` from the stored reports), bundle and
    snapshot state (``served``: what this replica serves for a cluster)."""
    reports = {r.cluster: r for r in await store.list_reports()}
    bundles = {b.trust_domain: b for b in await store.list_bundles()}
    clusters = await store.list_clusters()
    reach = assess_reachability(
        {c.name: _lease_input(reports.get(c.name)) for c in clusters},
        now=now,
        interval_s=interval_s,
        missed_intervals=missed_intervals,
    )
    rows = []
    for cluster in clusters:
        report = reports.get(cluster.name)
        bundle = bundles.get(cluster.trust_domain)
        acks = await store.get_ack_state(cluster.name)
        snapshot = served(cluster.name)
        nacked = acks.nacked_version if acks.nacked_version > acks.acked_version else None
        rows.append(
            ClusterStatus(
                cluster=cluster.name,
                trust_domain=cluster.trust_domain,
                locality=cluster.locality,
                lease=reach.states[cluster.name],
                last_report_age_s=None if report is None else now - report.received_at,
                unreachable_from=reach.unreachable_from(cluster.name),
                bundle_sequence=None if bundle is None else bundle.sequence,
                bundle_expires_at=None if bundle is None else _bundle_expiry(bundle.bundle),
                snapshot_version=None if snapshot is None else snapshot.version,
                acked_version=acks.acked_version or None,
                nacked_version=nacked,
                nack_error=(acks.nacked_error or "") if nacked else "",
            )
        )
    return FederationStatus(clusters=tuple(rows))


def _lease_input(record: ReportRecord | None) -> LeaseInput:
    if record is None:
        return LeaseInput(None)
    try:
        peers = HealthReport.model_validate_json(record.report).peers
    except ValidationError:
        peers = ()
    return LeaseInput(record.received_at, peers)


def _bundle_expiry(text: str) -> float | None:
    try:
        bundle = parse_bundle(None, text)
    except BundleError:
        return None
    times = [cert.not_valid_after_utc.timestamp() for cert in bundle.x509_authorities]
    return min(times) if times else None
