"""PostgreSQL backend: psycopg 3 (sync API) in ``trio.to_thread``, for several replicas.

* Writes are serialised across replicas by a transaction-level advisory lock taken first in
  each write transaction: change sequences, event ids and snapshot versions are assigned in
  commit order, which is what makes catch-up by ``seq`` exact.
* Each write ``pg_notify``s its changes inside the transaction (delivered on commit); every
  replica's :class:`ChangeListener` feeds its subscribers.
* Leadership is a session advisory lock (see :mod:`.leadership`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import psycopg
import trio
from psycopg import sql

from federation.store.feed import ChangeHub
from federation.store.postgres import leadership
from federation.store.postgres.connection import (
    MIGRATION_LOCK,
    WRITE_LOCK,
    ConnectionPool,
    redact,
)
from federation.store.postgres.listener import ChangeListener
from federation.store.postgres.migrations import MIGRATIONS
from federation.store.protocol import LeaderWork
from federation.store.records import Change
from federation.store.registry import StoreConfig
from federation.store.schema import apply_migrations
from federation.store.sqlstore import Body, SqlStore
from federation.store.transaction import Transaction

T = TypeVar("T")

# The channel name is CHANGES_CHANNEL (connection.py).
_CHANGED_SQL = (
    "WITH bumped AS ("
    " INSERT INTO changes (topic, seq) SELECT ?, COALESCE(MAX(seq), 0) + 1 FROM changes"
    " ON CONFLICT (topic) DO UPDATE SET seq = excluded.seq RETURNING seq, topic)"
    " SELECT seq, pg_notify('isthmus_changes', seq || ' ' || topic) FROM bumped"
)


# Many topics in ONE round trip (a rebuild bumps 1,000 ``snapshot:<cluster>`` topics: one
# statement each took ~0.2 s of round trips): numbered in the given order above the current
# maximum, notified in that order (the sorted subquery feeds pg_notify row by row).
_CHANGED_MANY_SQL = (
    "WITH base AS (SELECT COALESCE(MAX(seq), 0) AS top FROM changes),"
    " wanted AS (SELECT w.topic, w.n FROM unnest(%s::text[]) WITH ORDINALITY AS w(topic, n)),"
    " bumped AS (INSERT INTO changes (topic, seq)"
    " SELECT wanted.topic, base.top + wanted.n FROM wanted, base"
    " ON CONFLICT (topic) DO UPDATE SET seq = excluded.seq RETURNING seq, topic)"
    " SELECT o.seq, o.topic, pg_notify('isthmus_changes', o.seq || ' ' || o.topic)"
    " FROM (SELECT seq, topic FROM bumped ORDER BY seq) AS o"
)


class PostgresTransaction(Transaction):
    """psycopg placeholders; bumps the change row and notifies in one round trip."""

    placeholder = "%s"

    def changed_many(self, topics: Sequence[str]) -> list[Change]:
        if len(set(topics)) != len(topics):  # one statement may not upsert a row twice
            return [self.changed(topic) for topic in topics]
        if not topics:
            return []
        rows = self.all(_CHANGED_MANY_SQL, (list(topics),))
        changes = [Change(int(row[0]), str(row[1])) for row in rows]
        self.changes.extend(changes)
        return changes

    def changed(self, topic: str) -> Change:
        row = self.one(_CHANGED_SQL, (topic,))
        assert row is not None
        change = Change(int(row[0]), topic)
        self.changes.append(change)
        return change


# record_report is the hot path (1,000 gateways x 1 report/s), group-committed by SqlStore: the
# lock, one multi-row upsert and one change bump per cluster are sent as ONE simple-protocol
# query (values bound client-side as quoted literals), which runs as one implicit transaction
# and holds the write lock for no network round trip at all.
_LOCK_SQL = sql.SQL("SELECT pg_advisory_xact_lock({lock_class}, {lock_id})")
_UPSERT_SQL = sql.SQL(
    "INSERT INTO reports (cluster, received_at, report) VALUES {rows}"
    " ON CONFLICT (cluster) DO UPDATE SET received_at = excluded.received_at,"
    " report = excluded.report"
)
_BUMP_SQL = sql.SQL(
    "WITH bumped AS ("
    " INSERT INTO changes (topic, seq) SELECT {topic}, COALESCE(MAX(seq), 0) + 1 FROM changes"
    " ON CONFLICT (topic) DO UPDATE SET seq = excluded.seq RETURNING seq, topic)"
    " SELECT seq, pg_notify('isthmus_changes', seq || ' ' || topic) FROM bumped"
)


def _run_reports(conn: psycopg.Connection[Any], reports: list[tuple[str, str, float]]) -> None:
    latest = {cluster: (text, at) for cluster, text, at in reports}  # the later one wins
    rows = sql.SQL(", ").join(
        sql.SQL("({}, {}, {})").format(sql.Literal(c), sql.Literal(at), sql.Literal(text))
        for c, (text, at) in sorted(latest.items())
    )
    statements = [
        _LOCK_SQL.format(lock_class=WRITE_LOCK[0], lock_id=WRITE_LOCK[1]),
        _UPSERT_SQL.format(rows=rows),
        *(_BUMP_SQL.format(topic=sql.Literal(f"report:{c}")) for c in sorted(latest)),
    ]
    conn.execute(sql.SQL("; ").join(statements))


def _run_write(conn: psycopg.Connection[Any], body: Body[T], lock: tuple[int, int]) -> T:
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", lock)
        return body(PostgresTransaction(cursor))


def _run_read(conn: psycopg.Connection[Any], body: Body[T]) -> T:
    # Every read is one statement: autocommit gives it a consistent snapshot for free.
    with conn.cursor() as cursor:
        return body(PostgresTransaction(cursor))


class PostgresStore(SqlStore):
    """A :class:`~federation.store.Store` over PostgreSQL; see :func:`open_postgres_store`."""

    backend_name = "postgres"

    def __init__(self, dsn: str, pool: ConnectionPool, hub: ChangeHub) -> None:
        self._dsn = dsn
        self._pool = pool
        self._hub = hub

    async def _read(self, body: Body[T]) -> T:
        return await self._pool.run(lambda conn: _run_read(conn, body), "read")

    async def _write(self, body: Body[T]) -> T:
        return await self._pool.run(lambda conn: _run_write(conn, body, WRITE_LOCK), "write")

    async def _migrate(self) -> int:
        return await self._pool.run(
            lambda conn: _run_write(
                conn, lambda tx: apply_migrations(tx, MIGRATIONS), MIGRATION_LOCK
            ),
            "schema migration",
        )

    async def _flush_reports(self, reports: list[tuple[str, str, float]]) -> None:
        await self._pool.run(lambda conn: _run_reports(conn, reports), "report")

    def changes(self) -> AbstractAsyncContextManager[AsyncIterator[Change]]:
        return self._hub.subscribe()

    async def run_as_leader(
        self, name: str, work: LeaderWork, *, retry_interval: float = 0.5
    ) -> None:
        await leadership.run_as_leader(self._dsn, name, work, retry_interval)

    def __repr__(self) -> str:
        return f"PostgresStore({redact(self._dsn)})"


@asynccontextmanager
async def open_postgres_store(config: StoreConfig) -> AsyncIterator[PostgresStore]:
    """Connect to ``config.url``, migrate the schema, start the change listener.

    Owns a pool of ``config.pool_size`` connections plus one listener connection; all are
    closed when the block exits. Raises ``StoreUnavailable`` if the server cannot be reached
    and ``SchemaVersionError`` if the schema is newer than this program.
    """
    dsn = config.url
    pool = ConnectionPool(dsn, config.pool_size)
    hub = ChangeHub()
    store = PostgresStore(dsn, pool, hub)
    try:
        await store._migrate()
        listener = ChangeListener(dsn, hub)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(listener.serve)
                try:
                    yield store
                finally:
                    listener.stop()
        except BaseExceptionGroup as group:
            # The caller's block runs inside our nursery; hand back its own exception, not a
            # group, so ``except StoreError`` around ``open_store`` works on every backend.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from group.exceptions[0].__cause__
            raise
    finally:
        await pool.close()
