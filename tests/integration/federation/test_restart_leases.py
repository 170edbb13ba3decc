"""A federation restarted after an outage longer than a lease keeps every cross-cluster route:
leases count from when the new leader started, not from reports stored before the outage."""

from __future__ import annotations

import json
from pathlib import Path

import trio

from federation.service.publisher import SnapshotPublisher
from federation.store import open_store
from tests.integration.federation.test_lease_timer import CHECKOUT, join, remote


async def test_restart_after_long_outage_keeps_remote_routes_for_a_lease(
    tmp_path: Path,
) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'fed.db'}") as store:
        await join(store, "aws")
        await join(store, "gcp")
        report = {"sequence": 1, "sent_at": 0.0, "services": [CHECKOUT]}
        await store.record_report("gcp", json.dumps(report), 0.0)
        await store.record_report("aws", json.dumps({**report, "services": []}), 0.0)

        publisher = SnapshotPublisher(store, clock=lambda: 100.0, interval_s=1.0, debounce_s=0)
        async with trio.open_nursery() as nursery:
            await nursery.start(publisher.run)
            first = await publisher.wait_newer("aws", -1, 5)
            assert first is not None
            # 100 s after the last stored report (the outage), the restarted leader still routes
            assert remote(first.body) == [{"gcp": 1}]
            assert publisher.reachability.is_up("gcp")
            nursery.cancel_scope.cancel()


async def test_silent_cluster_still_expires_one_lease_after_the_restart(
    tmp_path: Path,
) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'fed.db'}") as store:
        await join(store, "aws")
        await join(store, "gcp")
        report = {"sequence": 1, "sent_at": 0.0, "services": [CHECKOUT]}
        await store.record_report("gcp", json.dumps(report), trio.current_time() - 100.0)
        publisher = SnapshotPublisher(store, clock=trio.current_time, interval_s=0.1, debounce_s=0)
        async with trio.open_nursery() as nursery:
            await nursery.start(publisher.run)
            started = trio.current_time()
            first = await publisher.wait_newer("aws", -1, 5)
            assert first is not None and remote(first.body) == [{"gcp": 1}]
            expired = await publisher.wait_newer("aws", first.version, 5)
            assert expired is not None and remote(expired.body) == []
            assert 0.3 <= trio.current_time() - started < 2.0
            nursery.cancel_scope.cancel()
