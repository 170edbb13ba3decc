"""When each cluster last renewed its lease, as the leader judges it (sans-IO).

Three sources renew a lease: a stored report (read with the world), a report that arrived here
and is still on its way to the store (:meth:`LeaseTimes.arrived`), and a steady renewal noted
between rebuilds (:meth:`LeaseTimes.renewed`). A lease counts from no earlier than the moment
this replica became leader, so a federation that was down (or leaderless) longer than a lease
expires nobody at once. The expiry timer asks for the next deadline on every wake-up of the
leader's loop (up to ~200/s with 1,000 gateways reporting), so live renewals are kept in a heap
(O(log N) per renewal): with every gateway reporting once a second the oldest live renewal is
the next one to renew, so keeping only the oldest and rescanning all N whenever it renewed was
a scan of every cluster per report.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping
from dataclasses import replace

from federation.service.leases import LeaseInput, Reachability, lease_expires_at

#: Wake slightly after a lease deadline: leases expire strictly after it.
EXPIRY_SLACK_S = 0.001


class LeaseTimes:
    """Latest report time per cluster, arrivals not yet stored, and the leadership start."""

    def __init__(self, *, interval_s: float, missed_intervals: int) -> None:
        self._interval_s = interval_s
        self._missed = missed_intervals
        #: latest known report time per cluster (stored, or renewed since the last verdicts)
        self.report_times: dict[str, float] = {}
        #: when each cluster's latest report arrived here (stored or still being stored)
        self._arrivals: dict[str, float] = {}
        #: ``(time, cluster)`` of live leases' renewals, oldest first; entries whose time is no
        #: longer the cluster's latest are dropped when they reach the top; ``None``: build it
        #: from :attr:`report_times` (after new verdicts)
        self._heap: list[tuple[float, str]] | None = None
        #: when this replica last became leader (``None``: not yet)
        self.leading_since: float | None = None

    def start(self, received_at: float) -> float:
        """A report renews a lease from ``max(received_at, leadership start)``: reports that
        arrived before this leader took over cannot be held against clusters that had no
        federation to report to."""
        since = self.leading_since
        return received_at if since is None else max(received_at, since)

    def arrived(self, cluster: str, at: float) -> None:
        """A report of ``cluster`` arrived at ``at`` and is on its way to the store: its lease
        counts as renewed from then on. Leases are judged by when reports arrived, not by how
        soon the store took them: a rebuild writing 1,000 snapshots holds the store for
        seconds, and judging by the store alone then expired every lease at once (the 1,000
        gateways had reported on time), which rebuilt every snapshot again, and so on."""
        if at > self._arrivals.get(cluster, -math.inf):
            self._arrivals[cluster] = at

    def with_arrivals(self, leases: dict[str, LeaseInput]) -> dict[str, LeaseInput]:
        """``leases`` renewed by reports that arrived here after the store was read (or that
        the store has not taken yet). A cluster without a stored report stays pending."""
        arrivals = self._arrivals
        for name, lease in leases.items():
            at = arrivals.get(name)
            if at is not None and lease.last_report_at is not None:
                renewed = self.start(at)
                if renewed > lease.last_report_at:
                    leases[name] = replace(lease, last_report_at=renewed)
        return leases

    def judged(self, leases: Mapping[str, LeaseInput]) -> None:
        """New verdicts were made from ``leases``: their report times are the latest known."""
        self.report_times = {
            name: lease.last_report_at
            for name, lease in leases.items()
            if lease.last_report_at is not None
        }
        self._heap = None

    def renewed(self, cluster: str, at: float, is_up: Callable[[str], bool]) -> None:
        """Record ``cluster``'s latest report time (O(log N)); only a live lease's renewal can
        be the next deadline (a cluster not up changes state only with new verdicts)."""
        self.report_times[cluster] = at
        heap = self._heap
        if heap is None or not is_up(cluster):
            return
        if len(heap) > 2 * len(self.report_times) + 64:  # mostly superseded entries
            self._heap = None
            return
        heapq.heappush(heap, (at, cluster))

    def seconds_to_next_expiry(self, reachability: Reachability, now: float) -> float:
        """Seconds until the earliest lease still judged alive expires (0 if already overdue).

        An overdue lease must arm an immediate wake-up: its deadline can pass while the loop is
        busy (debounce, a store read for reports that came through another replica), and steady
        renewals of the other clusters never rebuild, so nothing else would ever expire it.
        Amortised O(log N) per renewal; O(N) once after new verdicts."""
        heap = self._heap
        times = self.report_times
        if heap is None:
            heap = [(at, name) for name, at in times.items() if reachability.is_up(name)]
            heapq.heapify(heap)
            self._heap = heap
        while heap and (times.get(heap[0][1]) != heap[0][0] or not reachability.is_up(heap[0][1])):
            heapq.heappop(heap)  # superseded by a later renewal, or no longer judged alive
        if not heap:
            return math.inf
        deadline = lease_expires_at(
            heap[0][0], interval_s=self._interval_s, missed_intervals=self._missed
        )
        return max(0.0, deadline - now) + EXPIRY_SLACK_S
