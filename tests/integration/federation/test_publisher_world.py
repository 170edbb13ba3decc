"""The snapshot leader plans from a world it keeps current (no whole store read per health
flip): a report stored here is built from without reading the store, one stored through another
replica (seen only on the change feed) is read and built from, and a cluster that joins makes
the next rebuild read the world whole.

Real SQLite store, MockClock (see test_publisher_latency)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from federation.service.publisher import SnapshotPublisher
from federation.store import Store, WorldRecords, open_store
from tests.integration.federation.store_clusters import join
from tests.integration.federation.test_publisher_latency import (
    DEBOUNCE_S,
    report,
    routes_to_gcp,
    send_report,
)


class CountingReads:
    """The store, counting whole-world reads and single-report reads."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.world_reads = 0
        self.report_reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def read_world(self) -> WorldRecords:
        self.world_reads += 1
        return await self._store.read_world()

    async def get_report(self, cluster: str) -> Any:
        self.report_reads += 1
        return await self._store.get_report(cluster)


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.3)


async def test_flips_are_built_from_the_kept_world_and_a_join_reads_it_whole(
    clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'fed.db'}") as real:
        await join(real, "aws")
        await join(real, "gcp")
        store = CountingReads(real)
        publisher = SnapshotPublisher(
            store,
            clock=trio.current_time,
            interval_s=600.0,
            debounce_s=DEBOUNCE_S,
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(publisher.run)
            served = await publisher.wait_newer("aws", -1, 300)
            assert served is not None
            await send_report(real, publisher, report(True))
            served = await publisher.wait_newer("aws", served.version, 300)
            assert served is not None and routes_to_gcp(served.body)
            whole = store.world_reads
            # a flip received here: built without reading the store
            await send_report(real, publisher, report(False))
            served = await publisher.wait_newer("aws", served.version, 300)
            assert served is not None and not routes_to_gcp(served.body)
            assert (store.world_reads, store.report_reads) == (whole, 0)
            # a flip stored by another replica (only the change feed tells): its report is read
            await real.record_report("gcp", report(True), trio.current_time())
            served = await publisher.wait_newer("aws", served.version, 300)
            assert served is not None and routes_to_gcp(served.body)
            assert store.world_reads == whole and store.report_reads >= 1
            # a join: the world is read whole, and the new cluster is routed to
            await join(real, "azure")
            await real.record_report("azure", report(True), trio.current_time())
            with trio.fail_after(300):
                while b'"azure"' not in served.body:
                    served = await publisher.wait_newer("aws", served.version, 300)
                    assert served is not None
            assert store.world_reads > whole
            nursery.cancel_scope.cancel()
