"""The federation's live view as a placement :class:`~federation.model.placement.Scenario`.

Pure (no I/O, no clock): the placement loop reads the store, the lease verdicts and its own
memory of recoveries, and hands them here. What comes from where:

* clusters — locality, capacity, cost per unit-hour and labels from registration (the join);
  health from the lease (``unreachable`` and ``pending`` — joined but never reported — place
  nothing and receive no traffic); ``healthy_percent`` is the share of healthy endpoints over
  everything the cluster's latest report exports; ``recovered_at`` is when its lease last came
  back, so traffic returns only after each service's ``failback_after``;
* services — every declared :class:`ServicePolicy` whose references resolve (a policy naming a
  cluster that has not joined, or a service not declared, is left out and reported by
  :func:`unresolved_services`);
* demand — each report's ``request_rate`` per declared service and source cluster, rounded to
  two significant digits so report noise does not re-plan;
* current — the last stored decisions (stability: the engine keeps what runs unless a move
  pays off).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import ValidationError

from federation.model.api import HealthReport, LeaseState
from federation.model.placement import (
    ClusterSpec,
    HealthState,
    Scenario,
    ServicePolicy,
)
from federation.store import ClusterRecord, ReportRecord

_LEASE_HEALTH: dict[str, HealthState] = {
    "healthy": HealthState.HEALTHY,
    "pending": HealthState.UNREACHABLE,
    "unreachable": HealthState.UNREACHABLE,
}


def quantize_rate(rate: float) -> float:
    """Two significant digits: 1234.5 -> 1200.0, 0.0123 -> 0.012 (report noise is not demand)."""
    return float(f"{rate:.2g}") if rate > 0 else 0.0


def healthy_percent(report: HealthReport | None) -> float | None:
    """Percent of healthy endpoint weight over every exported service (``None``: no endpoints)."""
    if report is None:
        return None
    total = healthy = 0
    for svc in report.services:
        for ep in (*svc.endpoints, *svc.tcp_endpoints):  # CONNECT-only services report TCP
            total += ep.weight
            healthy += ep.weight if ep.healthy else 0
    return None if total == 0 else 100.0 * healthy / total


def service_health(report: HealthReport | None, service: str) -> float | None:
    """Healthy share (0..1) of one service's endpoint weight in a report (``None``: not there)."""
    if report is None:
        return None
    for svc in report.services:
        if svc.name == service:
            endpoints = (*svc.endpoints, *svc.tcp_endpoints)
            total = sum(ep.weight for ep in endpoints)
            if total == 0:
                return None
            return sum(ep.weight for ep in endpoints if ep.healthy) / total
    return None


def cluster_spec(
    record: ClusterRecord,
    lease: LeaseState,
    report: HealthReport | None,
    recovered_at: float | None,
) -> ClusterSpec:
    """One cluster as the engine sees it (see the module docstring)."""
    health = _LEASE_HEALTH[lease]
    percent = None if health is HealthState.UNREACHABLE else healthy_percent(report)
    return ClusterSpec(
        name=record.name,
        cloud=record.locality.cloud,
        region=record.locality.region,
        zone=record.locality.zone,
        capacity=float(record.capacity),
        cost_per_unit_hour=record.cost_per_unit,
        labels=dict(record.labels),
        health=health,
        healthy_percent=percent,
        recovered_at=recovered_at,
    )


def unresolved_services(policies: Sequence[ServicePolicy], clusters: set[str]) -> dict[str, str]:
    """``{service: why}`` for policies naming clusters not joined or services not declared.

    Resolved transitively: a service with affinity to an unresolved one is unresolved too.
    """
    bad: dict[str, str] = {}
    for policy in policies:
        for field, names in (
            ("clusters", policy.clusters),
            ("failover.order", policy.failover.order),
        ):
            missing = sorted(set(names) - clusters)
            if missing:
                bad[policy.name] = f"{field}: cluster {missing[0]!r} has not joined"
                break
    changed = True
    while changed:
        changed = False
        known = {p.name for p in policies} - set(bad)
        for policy in policies:
            if policy.name in bad:
                continue
            for field, names in (
                ("affinity", policy.affinity),
                ("anti_affinity", policy.anti_affinity),
            ):
                missing = sorted(set(names) - known)
                if missing:
                    bad[policy.name] = f"{field}: service {missing[0]!r} is not declared"
                    changed = True
                    break
    return bad


def build_scenario(
    clusters: Sequence[ClusterRecord],
    leases: Mapping[str, LeaseState],
    reports: Mapping[str, HealthReport],
    policies: Sequence[ServicePolicy],
    *,
    recovered_at: Mapping[str, float],
    current: Mapping[str, Mapping[str, int]],
    now: float,
) -> Scenario:
    """The scenario of the live federation. ``clusters`` must not be empty (Scenario needs one);
    policies must be resolved (see :func:`unresolved_services`)."""
    specs = tuple(
        cluster_spec(
            record,
            leases.get(record.name, "pending"),
            reports.get(record.name),
            recovered_at.get(record.name),
        )
        for record in sorted(clusters, key=lambda r: r.name)
    )
    names = {spec.name for spec in specs}
    declared = {policy.name for policy in policies}
    demand: dict[str, dict[str, float]] = {}
    for source, report in sorted(reports.items()):
        if source not in names:
            continue
        for svc in report.services:
            rate = quantize_rate(svc.request_rate)
            if svc.name in declared and rate > 0:
                demand.setdefault(svc.name, {})[source] = rate
    kept = {
        service: {c: n for c, n in per.items() if c in names and n > 0}
        for service, per in current.items()
        if service in declared
    }
    return Scenario(
        now=now,
        clusters=specs,
        services=tuple(sorted(policies, key=lambda p: p.name)),
        demand=demand,
        current={service: per for service, per in kept.items() if per},
    )


def placement_report_key(report: HealthReport) -> tuple[object, ...]:
    """What of a report the plan reads: endpoint health and weights, and quantized demand."""
    return tuple(
        (
            svc.name,
            tuple(
                (ep.address, ep.healthy, ep.weight) for ep in (*svc.endpoints, *svc.tcp_endpoints)
            ),
            quantize_rate(svc.request_rate),
        )
        for svc in report.services
    )


class ReportCache:
    """The latest parsed report of each cluster, and whether a batch of new ones matters.

    Steady reports (1/s per gateway) renew leases and move counters; only a change in what
    :func:`placement_report_key` keeps makes the placement loop plan again.
    """

    def __init__(self) -> None:
        self.reports: dict[str, HealthReport] = {}
        self._raw: dict[str, str] = {}
        self._keys: dict[str, tuple[object, ...]] = {}

    def update(self, records: Sequence[ReportRecord], only: set[str] | None = None) -> bool:
        """Take ``records`` (of the clusters in ``only``, or all); True if any key changed.
        Unparseable reports are skipped (the API validated them before storing)."""
        changed = False
        for record in records:
            if only is not None and record.cluster not in only:
                continue
            if self._raw.get(record.cluster) == record.report:
                continue
            try:
                report = HealthReport.model_validate_json(record.report)
            except ValidationError:
                continue
            self._raw[record.cluster] = record.report
            self.reports[record.cluster] = report
            key = placement_report_key(report)
            if self._keys.get(record.cluster) != key:
                self._keys[record.cluster] = key
                changed = True
        return changed
