"""PostgreSQL replicas survive broken connections: the change feed catches up, leadership moves."""

from __future__ import annotations

from functools import partial

import psycopg
import trio

from federation.store import Change, StoreConfig, open_store


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


class PartitionableProxy:
    """A TCP relay to PostgreSQL on 127.0.0.1 that can be partitioned.

    While partitioned it forwards nothing (bytes are held, sockets stay open, like a network
    that silently drops packets) and closes new connections at once.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.partitioned = False
        self._healed = trio.Event()
        self.port = 0

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._relay, listeners)

    def partition(self) -> None:
        self.partitioned = True

    async def _pump(self, source: trio.SocketStream, sink: trio.SocketStream) -> None:
        while data := await source.receive_some(65536):
            while self.partitioned:
                await self._healed.wait()
            await sink.send_all(data)

    async def _relay(self, client: trio.SocketStream) -> None:
        if self.partitioned:
            await client.aclose()
            return
        server = await trio.open_tcp_stream(*self.target)
        async with client, server, trio.open_nursery() as nursery:
            nursery.start_soon(self._pump, client, server)
            nursery.start_soon(self._pump, server, client)


async def test_partitioned_leader_stops_its_work_within_four_seconds(postgres_dsn: str) -> None:
    info = psycopg.conninfo.conninfo_to_dict(postgres_dsn)
    proxy = PartitionableProxy(str(info.get("host", "127.0.0.1")), int(info.get("port", 5432)))
    elected = trio.Event()
    fenced_at: list[float] = []

    async def lead() -> None:
        elected.set()
        try:
            await trio.sleep_forever()
        finally:
            fenced_at.append(trio.current_time())

    async with trio.open_nursery() as outer:
        await outer.start(proxy.serve)
        url = psycopg.conninfo.make_conninfo(postgres_dsn, host="127.0.0.1", port=proxy.port)
        config = StoreConfig(url=url, backend="postgres")
        async with open_store(config) as store, trio.open_nursery() as nursery:
            nursery.start_soon(partial(store.run_as_leader, retry_interval=0.1), "placement", lead)
            with trio.fail_after(5):
                await elected.wait()
            proxy.partition()
            partitioned_at = trio.current_time()
            with trio.fail_after(10):
                while not fenced_at:
                    await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
        outer.cancel_scope.cancel()
    fencing = fenced_at[0] - partitioned_at
    # PING_INTERVAL (0.5 s) + PING_TIMEOUT (2 s), plus scheduling slack on a busy machine.
    assert fencing < 4.0, f"a partitioned leader kept working for {fencing:.2f} s"
