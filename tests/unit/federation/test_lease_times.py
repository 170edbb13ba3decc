"""The lease-expiry timer's next deadline is always the oldest live renewal's, however the
renewals interleave (checked against a scan of every cluster)."""

from __future__ import annotations

import math
import random

from federation.service.lease_times import EXPIRY_SLACK_S, LeaseTimes
from federation.service.leases import LeaseInput, Reachability


def _scan(times: LeaseTimes, reachability: Reachability, now: float) -> float:
    live = [at for name, at in times.report_times.items() if reachability.is_up(name)]
    if not live:
        return math.inf
    return max(0.0, min(live) + 3.0 - now) + EXPIRY_SLACK_S


def test_next_deadline_follows_the_oldest_live_renewal_through_many_renewals() -> None:
    rng = random.Random(7)
    names = [f"c{i}" for i in range(50)]
    times = LeaseTimes(interval_s=1.0, missed_intervals=3)
    leases = {name: LeaseInput(rng.uniform(0.0, 1.0)) for name in names}
    times.judged(leases)
    down = set(rng.sample(names, 5))
    reachability = Reachability({n: "unreachable" if n in down else "healthy" for n in names})
    now = 1.0
    for step in range(5_000):  # enough renewals to compact the heap many times
        now += 0.001
        cluster = rng.choice(names)
        # mostly in arrival order, sometimes an older time (a report that waited)
        at = now if rng.random() < 0.9 else now - rng.uniform(0.0, 0.5)
        times.renewed(cluster, at, reachability.is_up)
        if step % 7 == 0:
            assert times.seconds_to_next_expiry(reachability, now) == _scan(
                times, reachability, now
            )


def test_new_verdicts_start_over_and_no_live_lease_means_no_deadline() -> None:
    times = LeaseTimes(interval_s=1.0, missed_intervals=3)
    times.judged({"a": LeaseInput(10.0), "b": LeaseInput(11.0)})
    both = Reachability({"a": "healthy", "b": "healthy"})
    assert times.seconds_to_next_expiry(both, 12.0) == 1.0 + EXPIRY_SLACK_S
    times.renewed("a", 12.0, both.is_up)
    assert times.seconds_to_next_expiry(both, 12.0) == 2.0 + EXPIRY_SLACK_S  # b is oldest now
    times.judged({"a": LeaseInput(12.0), "b": LeaseInput(11.0)})
    only_a = Reachability({"a": "healthy", "b": "unreachable"})
    assert times.seconds_to_next_expiry(only_a, 12.0) == 3.0 + EXPIRY_SLACK_S
    times.renewed("b", 13.0, only_a.is_up)  # b is judged down until the next verdicts
    assert times.seconds_to_next_expiry(only_a, 12.0) == 3.0 + EXPIRY_SLACK_S
    times.judged({})
    assert times.seconds_to_next_expiry(Reachability({}), 12.0) == math.inf
