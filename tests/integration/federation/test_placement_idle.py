"""With no service declared, steady reports cost the placement loop no store read (it used to
read every cluster and service after each burst of reports: ~8 reads a second at 100 gateways,
each holding the store's connection while report and ACK commits waited)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from federation.service.placement_loop import PlacementLoop
from federation.store import ClusterRecord, open_store
from tests.integration.federation.store_clusters import join


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.05)


async def test_reports_without_declared_services_read_nothing(
    clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'fed.db'}") as store:
        await join(store, "aws")
        await join(store, "gcp")
        reads: list[str] = []
        list_clusters, list_services = store.list_clusters, store.list_services

        async def counted_clusters() -> list[ClusterRecord]:
            reads.append("clusters")
            return await list_clusters()

        async def counted_services() -> list[object]:
            reads.append("services")
            return list(await list_services())

        store.list_clusters = counted_clusters  # type: ignore[method-assign]
        store.list_services = counted_services  # type: ignore[method-assign]
        loop = PlacementLoop(store, clock=trio.current_time, request_rebuild=lambda: None)
        loop.note_states({"aws": "healthy", "gcp": "healthy"}, trio.current_time())
        async with trio.open_nursery() as nursery:
            await nursery.start(loop.lead)
            assert await loop.wait_first_plan(30)
            assert reads  # the first plan read what there is: nothing declared
            reads.clear()
            for second in range(5):
                for name in ("aws", "gcp"):
                    await store.record_report(name, {"sequence": second}, trio.current_time())
                await trio.sleep(0.5)  # 10 debounce windows
            assert reads == []
            loop.note_states({"aws": "healthy", "gcp": "unreachable"}, trio.current_time())
            with trio.fail_after(30):
                while not reads:  # a lease change still makes it look again
                    await trio.sleep(0.1)
            nursery.cancel_scope.cancel()
