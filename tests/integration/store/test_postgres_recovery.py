"""PostgreSQL replicas survive broken connections: the change feed catches up, leadership moves."""

from __future__ import annotations

import psycopg
import trio

from federation.store import Change, open_store


def _terminate(dsn: str, role: str) -> int:
    """Kill every session of ``role`` on this database, as an operator or a network fault would."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND datname = current_database()",
            (f"isthmus-federation/{role}",),
        ).fetchall()
    return len(rows)


async def test_change_feed_replays_changes_missed_while_disconnected(postgres_dsn: str) -> None:
    async with (
        open_store(postgres_dsn) as writer,
        open_store(postgres_dsn) as watcher,
        watcher.changes() as feed,
    ):
        await writer.put_service("before.ns", {}, now=1.0)
        with trio.fail_after(5):
            first = await feed.__anext__()
        assert first.topic == "service:before.ns"
        assert await trio.to_thread.run_sync(_terminate, postgres_dsn, "listener") == 2
        # Written while every listener is down: only the catch-up query can deliver these.
        for name in ("during-1.ns", "during-2.ns", "during-3.ns"):
            await writer.put_service(name, {}, now=2.0)
        seen: list[Change] = []
        with trio.fail_after(5):
            async for change in feed:
                seen.append(change)
                if len(seen) == 3:
                    break
    assert [c.topic for c in seen] == [
        "service:during-1.ns",
        "service:during-2.ns",
        "service:during-3.ns",
    ]
    assert [c.seq for c in seen] == [first.seq + 1, first.seq + 2, first.seq + 3]


async def test_leader_whose_lock_connection_breaks_is_cancelled_and_campaigns_again(
    postgres_dsn: str,
) -> None:
    terms: list[float] = []
    cancelled: list[float] = []
    elected = trio.Event()

    async def lead() -> None:
        nonlocal elected
        terms.append(trio.current_time())
        elected.set()
        try:
            await trio.sleep_forever()
        finally:
            cancelled.append(trio.current_time())

    async with open_store(postgres_dsn) as store, trio.open_nursery() as nursery:
        nursery.start_soon(store.run_as_leader, "expiry", lead)
        with trio.fail_after(5):
            await elected.wait()
        elected = trio.Event()
        assert await trio.to_thread.run_sync(_terminate, postgres_dsn, "leader") == 1
        with trio.fail_after(5):
            await elected.wait()
        nursery.cancel_scope.cancel()
    assert len(terms) == 2
    assert cancelled[0] <= terms[1], "the old term must end before the new one starts"
