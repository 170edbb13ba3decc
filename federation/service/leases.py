"""Health leases and reachability: pure decisions from report times, probe results and ``now``.

A report renews its cluster's lease. A lease missing for ``missed_intervals`` report intervals
(3 by default) marks the cluster *unreachable*: every other cluster routes around it. A cluster
whose lease is alive but which one peer reports it cannot probe is *not* down: only the link from
that peer is, and only that peer routes around it (:meth:`Reachability.can_reach`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from federation.model.api import LeaseState, PeerProbe

DEFAULT_MISSED_INTERVALS = 3


def lease_state(
    last_report_at: float | None,
    *,
    now: float,
    interval_s: float,
    missed_intervals: int = DEFAULT_MISSED_INTERVALS,
) -> LeaseState:
    """``pending`` before the first report, ``unreachable`` once more than ``missed_intervals``
    intervals have passed since the last one, else ``healthy``."""
    if last_report_at is None:
        return "pending"
    if now - last_report_at > missed_intervals * interval_s:
        return "unreachable"
    return "healthy"


def lease_expires_at(
    last_report_at: float, *, interval_s: float, missed_intervals: int = DEFAULT_MISSED_INTERVALS
) -> float:
    """The instant after which a lease last renewed at ``last_report_at`` is expired."""
    return last_report_at + missed_intervals * interval_s


@dataclass(frozen=True)
class LeaseInput:
    """What the lease core needs about one cluster: its last report time and its probes."""

    last_report_at: float | None
    probes: tuple[PeerProbe, ...] = ()


@dataclass(frozen=True)
class Reachability:
    """Who is up and which directed links are down, as of one ``now``."""

    states: Mapping[str, LeaseState]
    links_down: frozenset[tuple[str, str]] = field(default_factory=frozenset)

    def is_up(self, cluster: str) -> bool:
        return self.states.get(cluster) == "healthy"

    def can_reach(self, source: str, target: str) -> bool:
        """Whether ``source`` should send traffic to ``target``: the target's lease is alive and
        ``source`` has not reported the link to it as down."""
        return self.is_up(target) and (source, target) not in self.links_down

    def unreachable_from(self, target: str) -> tuple[str, ...]:
        """Peers that report they cannot reach ``target`` (sorted)."""
        return tuple(sorted(src for src, dst in self.links_down if dst == target))


def assess_reachability(
    clusters: Mapping[str, LeaseInput],
    *,
    now: float,
    interval_s: float,
    missed_intervals: int = DEFAULT_MISSED_INTERVALS,
) -> Reachability:
    """Lease state of every cluster and the links reported down.

    Only clusters whose own lease is alive are believed about their links: a silent cluster's
    last probes are stale. Probes naming a cluster that never joined are ignored.
    """
    states = {
        name: lease_state(
            item.last_report_at, now=now, interval_s=interval_s, missed_intervals=missed_intervals
        )
        for name, item in clusters.items()
    }
    links = frozenset(
        (name, probe.cluster)
        for name, item in clusters.items()
        if states[name] == "healthy"
        for probe in item.probes
        if not probe.ok and probe.cluster in clusters and probe.cluster != name
    )
    return Reachability(states, links)
