"""Leases are judged by when reports arrived, not by when the store took them: a store held up
by a rebuild must not expire the lease of a gateway that reported on time."""

from __future__ import annotations

import json
from pathlib import Path

from federation.service.publisher import SnapshotPublisher
from federation.store import open_store
from tests.integration.federation.test_lease_timer import CHECKOUT, join


async def _judged(tmp_path: Path, arrived_at: float | None) -> str:
    """gcp's lease at t=110 with its last stored report from t=100 (1 s interval, 3 missed)."""
    async with open_store(f"sqlite:///{tmp_path / 'fed.db'}") as store:
        await join(store, "aws")
        await join(store, "gcp")
        report = {"sequence": 1, "sent_at": 0.0, "services": [CHECKOUT]}
        await store.record_report("gcp", json.dumps(report), 100.0)
        now = 110.0
        publisher = SnapshotPublisher(store, clock=lambda: now, interval_s=1.0, debounce_s=0)
        publisher.reachability = publisher.reachability.__class__({"gcp": "healthy"})
        if arrived_at is not None:
            publisher.note_arrival("gcp", arrived_at)  # still on its way to the store
        await publisher._assess()
        return publisher.reachability.states["gcp"]


async def test_a_report_still_being_stored_keeps_the_lease(tmp_path: Path) -> None:
    assert await _judged(tmp_path, arrived_at=109.5) == "healthy"


async def test_without_a_recent_arrival_the_stored_report_decides(tmp_path: Path) -> None:
    assert await _judged(tmp_path / "none", arrived_at=None) == "unreachable"
    assert await _judged(tmp_path / "old", arrived_at=106.0) == "unreachable"


async def test_an_arrival_never_makes_a_cluster_without_a_stored_report_healthy(
    tmp_path: Path,
) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'fed.db'}") as store:
        await join(store, "aws")
        publisher = SnapshotPublisher(store, clock=lambda: 10.0, interval_s=1.0, debounce_s=0)
        publisher.note_arrival("aws", 9.9)  # its first report is not stored yet: no services
        await publisher._assess()
        assert publisher.reachability.states["aws"] == "pending"
