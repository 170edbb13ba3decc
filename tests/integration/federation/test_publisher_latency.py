"""What the publisher does between a health change and the streams' pushes: a report that
changes a snapshot is built for at once (not after the debounce), streams are called the moment
a version is served, and the gzip form only long-polls use is made when one asks for it.

Real SQLite store, MockClock: the clock autojumps only after 0.3 s of real idleness, so virtual
time passes only where the publisher sleeps (its debounce), never during a database call.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import trio
import trio.testing

from federation.model.api import HealthReport
from federation.service.publisher import SnapshotPublisher
from federation.store import ReportRecord, Store, open_store
from tests.integration.federation.store_clusters import join

#: Far longer than any build: a test that waits for it would see virtual time jump by it.
DEBOUNCE_S = 30.0


def report(healthy: bool, in_flight: int = 0) -> str:
    endpoint = {"address": "127.0.0.1:8080", "healthy": healthy}
    service = {
        "name": "checkout.shop",
        "endpoints": [endpoint],
        "allowed_sources": ["*"],
        "in_flight": in_flight,
    }
    return json.dumps({"sequence": 1, "sent_at": 0.0, "services": [service]})


async def send_report(store: Store, publisher: SnapshotPublisher, raw: str) -> None:
    """What the service does with a report received here: store it, tell the publisher."""
    now = trio.current_time()
    await store.record_report("gcp", raw, now)
    publisher.note_report("gcp", now, HealthReport.model_validate_json(raw), raw)


def routes_to_gcp(body: bytes) -> bool:
    services = json.loads(body)["routing"]["services"]
    return any("gcp" in level["weights"] for s in services for level in s["priorities"])


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.3)


async def test_a_health_change_is_built_at_once_and_a_renewal_not_at_all(
    clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'fed.db'}") as store:
        await join(store, "aws")
        await join(store, "gcp")
        publisher = SnapshotPublisher(
            store, clock=trio.current_time, interval_s=60.0, debounce_s=DEBOUNCE_S
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(publisher.run)
            first = await publisher.wait_newer("aws", -1, 300)
            assert first is not None and not routes_to_gcp(first.body)
            for healthy in (True, False):
                changed_at = trio.current_time()
                await send_report(store, publisher, report(healthy))
                served = await publisher.wait_newer("aws", first.version, 300)
                assert served is not None and routes_to_gcp(served.body) is healthy
                assert trio.current_time() - changed_at < DEBOUNCE_S
                first = served
            # load metrics only: the debounce applies, and nothing is rebuilt
            await send_report(store, publisher, report(False, in_flight=7))
            assert await publisher.wait_newer("aws", first.version, 3 * DEBOUNCE_S) is None
            nursery.cancel_scope.cancel()


async def test_streams_are_called_per_version_and_long_polls_get_gzip(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'fed.db'}") as store:
        await join(store, "aws")
        await join(store, "gcp")
        publisher = SnapshotPublisher(store, clock=trio.current_time, interval_s=60.0)
        called: list[int] = []

        def wake() -> None:
            served = publisher.current("aws")
            called.append(served.version if served is not None else -1)

        async with trio.open_nursery() as nursery:
            await nursery.start(publisher.run)
            with publisher.watching("aws", wake):
                first = await publisher.wait_newer("aws", -1, 30)
                assert first is not None
                await send_report(store, publisher, report(True))
                pushed = await publisher.wait_newer("aws", first.version, 30)
                assert pushed is not None and routes_to_gcp(pushed.body)
                assert called[-1] == pushed.version  # called before any waiter was woken
            await send_report(store, publisher, report(False))
            polled = await publisher.wait_newer("aws", pushed.version, 30)
            assert polled is not None and not routes_to_gcp(polled.body)
            assert called[-1] == pushed.version  # left the block: not called any more
            assert gzip.decompress(polled.gzipped) == polled.body
            assert publisher.current("aws") == polled  # made once, kept for the next poll
            nursery.cancel_scope.cancel()


async def test_a_body_is_served_with_the_version_the_store_assigned(tmp_path: Path) -> None:
    """When another writer bumped the stored version meanwhile (a former leader), the served
    body carries the version the store assigned, not the one after the last served."""
    async with open_store(f"sqlite:///{tmp_path / 'fed.db'}") as store:
        await join(store, "aws")
        await join(store, "gcp")
        publisher = SnapshotPublisher(store, clock=trio.current_time, interval_s=60.0)
        async with trio.open_nursery() as nursery:
            await nursery.start(publisher.run)
            first = await publisher.wait_newer("aws", -1, 30)
            assert first is not None
            for _ in range(3):  # versions this publisher (the leader) did not write
                await store.put_snapshot("aws", first.body.decode(), trio.current_time())
            await send_report(store, publisher, report(True))
            served = await publisher.wait_newer("aws", first.version, 30)
            assert served is not None and routes_to_gcp(served.body)
            stored = await store.get_snapshot("aws")
            assert stored is not None and served.version == stored.version == first.version + 4
            document = json.loads(served.body)
            assert document["version"] == document["routing"]["version"] == served.version
            nursery.cancel_scope.cancel()


async def test_the_echo_of_a_report_noted_here_reads_no_reports(tmp_path: Path) -> None:
    """The change feed echoes every report stored here; when the echo comes after the leader's
    loop consumed the report noted here (a busy loop), it must not pass for a report received
    by another replica, which the leader reads (all N of them) to classify."""
    async with open_store(f"sqlite:///{tmp_path / 'fed.db'}") as store:
        await join(store, "aws")
        await join(store, "gcp")
        publisher = SnapshotPublisher(store, clock=trio.current_time, interval_s=60.0)
        reads = 0
        list_reports = store.list_reports

        async def counted() -> list[ReportRecord]:
            nonlocal reads
            reads += 1
            return await list_reports()

        async with trio.open_nursery() as nursery:
            await nursery.start(publisher.run)
            first = await publisher.wait_newer("aws", -1, 30)
            assert first is not None
            await send_report(store, publisher, report(True))
            assert await publisher.wait_newer("aws", first.version, 30) is not None
            store.list_reports = counted  # type: ignore[method-assign]
            for in_flight in range(1, 6):  # renewals: noted, consumed by the loop, then echoed
                raw, now = report(True, in_flight), trio.current_time()
                publisher.note_report("gcp", now, HealthReport.model_validate_json(raw), raw)
                await trio.sleep(0.1)  # the loop took it (debounce 5 ms)
                await store.record_report("gcp", raw, now)
                await trio.sleep(0.1)  # the echo reached the leader
            assert reads == 0
            nursery.cancel_scope.cancel()
