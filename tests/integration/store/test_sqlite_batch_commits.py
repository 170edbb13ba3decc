"""SQLite group commits (reports, ACKs) on the event loop: committed without a worker thread,
moved to one when another connection holds the write lock (the loop never waits for a lock),
and the WAL checkpointed by the store's own task, never by a commit."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import trio
import trio.testing

from federation.store import open_store
from federation.store.sqlite.backend import SqliteStore


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'federation.db'}"


async def test_reports_and_acks_commit_on_the_event_loop(tmp_path: Path) -> None:
    async with open_store(_url(tmp_path)) as store:
        assert isinstance(store, SqliteStore)
        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(store.record_report, f"c{n}", {"n": n}, float(n))
        await store.record_ack("c1", 3, ok=True, error=None, at=5.0)
        assert store.threaded_batches == 0
        assert 2 <= store.inline_commits <= 21  # group-committed: fewer commits than writes
        assert [r.cluster for r in await store.list_reports()] == sorted(f"c{n}" for n in range(20))
        assert (await store.get_ack_state("c1")).acked_version == 3


async def test_a_rebuilds_snapshots_commit_on_the_event_loop(tmp_path: Path) -> None:
    """Every push of a rebuild waits for its snapshots: they commit inline, not via a thread."""
    async with open_store(_url(tmp_path)) as store:
        assert isinstance(store, SqliteStore)
        versions = await store.put_snapshots({f"c{n}": {"n": n} for n in range(5)}, 1.0)
        assert sorted(versions) == [f"c{n}" for n in range(5)]
        assert (store.inline_commits, store.threaded_batches) == (1, 0)
        record = await store.get_snapshot("c3")
        assert record is not None and record.version == versions["c3"]


async def test_a_locked_database_moves_the_batch_to_a_thread(tmp_path: Path) -> None:
    async with open_store(_url(tmp_path)) as store:
        assert isinstance(store, SqliteStore)
        other = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        release = threading.Timer(0.3, other.execute, ("COMMIT",))
        ticks = 0

        async def heartbeat() -> None:
            nonlocal ticks
            while True:
                await trio.sleep(0.01)
                ticks += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(heartbeat)
            release.start()
            with trio.fail_after(5):
                await store.record_report("c1", {"n": 1}, received_at=1.0)
            nursery.cancel_scope.cancel()
        other.close()
        assert store.threaded_batches == 1
        assert ticks >= 10  # the event loop kept running while the batch waited for the lock
        report = await store.get_report("c1")
        assert report is not None and report.report == '{"n":1}'


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.1)


async def test_the_wal_is_checkpointed_after_writes_not_by_them(
    clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with open_store(_url(tmp_path)) as store:
        assert isinstance(store, SqliteStore)
        await trio.sleep(5)
        settled = store.checkpoints  # the migration's write, checkpointed once
        await trio.sleep(5)
        assert store.checkpoints == settled  # no writes, no checkpoints
        for n in range(50):
            await store.record_report(f"c{n}", {"pad": "x" * 2000}, float(n))
        assert store.checkpoints == settled
        await trio.sleep(2)
        assert store.checkpoints == settled + 1
