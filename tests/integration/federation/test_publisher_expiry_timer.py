"""The leader's lease-expiry timer: a deadline that passed while the loop was busy must still
wake it at once (regression: it was dropped, and steady renewals of the other clusters never
rebuild, so a silent cluster stayed healthy for good)."""

from __future__ import annotations

from pathlib import Path

import pytest

from federation.service.leases import Reachability, lease_expires_at
from federation.service.publisher import SnapshotPublisher
from federation.store import open_store

INTERVAL_S = 0.3


@pytest.mark.parametrize("overdue_by", [0.002, 5.0])
async def test_an_overdue_lease_arms_an_immediate_wake_up(
    tmp_path: Path, overdue_by: float
) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'f.db'}") as store:
        silent_deadline = lease_expires_at(100.0, interval_s=INTERVAL_S)
        now = silent_deadline + overdue_by
        publisher = SnapshotPublisher(store, clock=lambda: now, interval_s=INTERVAL_S)
        publisher.reachability = Reachability({"a": "healthy", "b": "healthy"})
        publisher.lease_times.report_times.update({"a": 100.0, "b": now})  # b keeps renewing
        assert publisher._seconds_to_next_expiry() < 0.01


async def test_the_timer_waits_for_the_earliest_live_deadline(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'f.db'}") as store:
        publisher = SnapshotPublisher(store, clock=lambda: 100.0, interval_s=INTERVAL_S)
        publisher.reachability = Reachability({"a": "healthy", "b": "unreachable"})
        publisher.lease_times.report_times.update({"a": 100.0, "b": 50.0})  # b: judged down
        expected = lease_expires_at(100.0, interval_s=INTERVAL_S) - 100.0
        assert publisher._seconds_to_next_expiry() == pytest.approx(expected, abs=0.01)


async def test_the_timer_follows_renewals_without_rescanning_every_lease(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'f.db'}") as store:
        publisher = SnapshotPublisher(store, clock=lambda: 100.0, interval_s=INTERVAL_S)
        publisher.reachability = Reachability(
            {"a": "healthy", "b": "healthy", "c": "healthy", "d": "unreachable"}
        )
        publisher.lease_times.report_times.update({"a": 99.5, "b": 99.7, "c": 99.9})

        def due() -> float:
            return publisher._seconds_to_next_expiry() + 100.0

        assert due() == pytest.approx(lease_expires_at(99.5, interval_s=INTERVAL_S), abs=0.01)
        publisher.note_report("b", 100.0)  # not the oldest: the deadline stays
        assert due() == pytest.approx(lease_expires_at(99.5, interval_s=INTERVAL_S), abs=0.01)
        publisher.note_report("a", 100.0)  # the oldest renewed: c is now the oldest
        assert due() == pytest.approx(lease_expires_at(99.9, interval_s=INTERVAL_S), abs=0.01)
        publisher.note_report("b", 99.8)  # an older time (another replica's report) counts
        assert due() == pytest.approx(lease_expires_at(99.8, interval_s=INTERVAL_S), abs=0.01)
        publisher.note_report("d", 10.0)  # a lease already judged down never arms the timer
        assert due() == pytest.approx(lease_expires_at(99.8, interval_s=INTERVAL_S), abs=0.01)
