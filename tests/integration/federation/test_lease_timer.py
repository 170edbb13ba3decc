"""The lease timer under a mock clock: a silent cluster is marked unreachable right after
3 report intervals — not before, not much later — and its traffic leaves the others' snapshots.

Uses a real SQLite store; the clock autojumps only after 0.3 s of real idleness, so time never
jumps while a database call is still running in its thread.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
import trio.testing

from federation.service.publisher import SnapshotPublisher
from federation.store import open_store
from tests.integration.federation.store_clusters import join

CHECKOUT = {
    "name": "checkout.shop",
    "endpoints": [{"address": "127.0.0.1:8080"}],
    "allowed_sources": ["*"],
}


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.3)


def remote(body: bytes) -> list[dict[str, int]]:
    services = json.loads(body)["routing"]["services"]
    return [level["weights"] for level in services[0]["priorities"]] if services else []


async def test_silent_cluster_expires_exactly_after_three_intervals(
    clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'fed.db'}") as store:
        await join(store, "aws")
        await join(store, "gcp")
        publisher = SnapshotPublisher(store, clock=trio.current_time, interval_s=1.0, debounce_s=0)
        async with trio.open_nursery() as nursery:
            await nursery.start(publisher.run)
            first = await publisher.wait_newer("aws", -1, 30)
            assert first is not None
            reported_at = trio.current_time()
            report = {"sequence": 1, "sent_at": 0.0, "services": [CHECKOUT]}
            await store.record_report("gcp", json.dumps(report), reported_at)
            publisher.note_report("gcp", reported_at)
            routed = await publisher.wait_newer("aws", first.version, 30)
            assert routed is not None and remote(routed.body) == [{"gcp": 1}]
            expired = await publisher.wait_newer("aws", routed.version, 30)
            assert expired is not None and remote(expired.body) == []
            silent_for = trio.current_time() - reported_at
            assert 3.0 < silent_for < 3.2
            events = [(e.kind, e.subject, json.loads(e.detail)) for e in await store.list_events()]
            assert ("lease", "gcp", {"from": "pending", "to": "healthy"}) in events
            assert ("lease", "gcp", {"from": "healthy", "to": "unreachable"}) in events
            nursery.cancel_scope.cancel()
