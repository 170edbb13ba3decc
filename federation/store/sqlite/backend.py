"""SQLite backend: stdlib ``sqlite3`` in WAL mode, blocking calls in ``trio.to_thread``.

Each store owns one connection used by one worker thread at a time (a ``CapacityLimiter(1)``),
so calls are serialised per store; stores on the same file serialise through SQLite's own lock.
Change notifications and leadership are shared in-process by every store open on the same file
(the "replicas" of an embedded federation all live in one process).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import trio

from federation.store.errors import StoreConfigError, StoreError, StoreUnavailable
from federation.store.feed import ChangeHub
from federation.store.protocol import LeaderWork
from federation.store.records import Change
from federation.store.registry import StoreConfig
from federation.store.schema import apply_migrations
from federation.store.sqlite.migrations import MIGRATIONS
from federation.store.sqlstore import Body, SqlStore
from federation.store.transaction import Transaction

T = TypeVar("T")


@dataclass
class _SharedFile:
    """What every store open on one database file in this process shares."""

    hub: ChangeHub = field(default_factory=ChangeHub)
    leader_locks: dict[str, trio.Lock] = field(default_factory=dict)
    users: int = 0


_OPEN_FILES: dict[str, _SharedFile] = {}


def sqlite_path(url: str) -> Path:
    """``sqlite:///abs/path.db`` → ``/abs/path.db``. Raises :class:`StoreConfigError`."""
    prefix = "sqlite://"
    rest = url[len(prefix) :] if url.lower().startswith(prefix) else ""
    if not rest or rest == ":memory:" or rest.startswith("/:memory:"):
        raise StoreConfigError(
            f"store.url: {url!r} names no database file; use sqlite:///path/to/federation.db"
        )
    return Path(rest)


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        # Token hashes and credentials fingerprints live here: owner-only from the start.
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class SqliteStore(SqlStore):
    """A :class:`~federation.store.Store` over one SQLite file; see :func:`open_sqlite_store`."""

    backend_name = "sqlite"

    def __init__(self, path: Path, conn: sqlite3.Connection, shared: _SharedFile) -> None:
        self.path = path
        self._conn = conn
        self._shared = shared
        self._limiter = trio.CapacityLimiter(1)

    def _transaction_sync(self, body: Body[T], write: bool) -> tuple[T, list[Change]]:
        cursor = self._conn.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            tx = Transaction(cursor)
            try:
                result = body(tx)
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")
            return result, tx.changes
        except sqlite3.Error as err:
            if self._conn.in_transaction:
                self._conn.rollback()
            if isinstance(err, sqlite3.OperationalError):  # locked, I/O error, disk full
                raise StoreUnavailable(f"sqlite database {self.path}: {err}") from err
            raise StoreError(f"sqlite database {self.path}: {err}") from err
        finally:
            cursor.close()

    async def _read(self, body: Body[T]) -> T:
        result, _ = await trio.to_thread.run_sync(
            self._transaction_sync, body, False, limiter=self._limiter
        )
        return result

    async def _write(self, body: Body[T]) -> T:
        result, changes = await trio.to_thread.run_sync(
            self._transaction_sync, body, True, limiter=self._limiter
        )
        # No checkpoint between commit and publish: a cancelled caller still announces.
        self._shared.hub.publish(changes)
        return result

    def changes(self) -> AbstractAsyncContextManager[AsyncIterator[Change]]:
        return self._shared.hub.subscribe()

    async def run_as_leader(
        self, name: str, work: LeaderWork, *, retry_interval: float = 0.5
    ) -> None:
        lock = self._shared.leader_locks.setdefault(name, trio.Lock())
        async with lock:
            await work()


@asynccontextmanager
async def open_sqlite_store(config: StoreConfig) -> AsyncIterator[SqliteStore]:
    """Open (creating if needed) the SQLite database at ``config.url`` and migrate it.

    The connection is closed when the block exits. Raises ``StoreConfigError`` for a bad URL,
    ``StoreUnavailable`` if the file cannot be opened, ``SchemaVersionError`` if it is newer.
    """
    path = sqlite_path(config.url)
    try:
        conn = await trio.to_thread.run_sync(_connect, path)
    except (OSError, sqlite3.Error) as err:
        raise StoreUnavailable(f"cannot open sqlite database {path}: {err}") from err
    key = str(path.resolve())
    shared = _OPEN_FILES.setdefault(key, _SharedFile())
    shared.users += 1
    try:
        store = SqliteStore(path, conn, shared)
        await store._write(lambda tx: apply_migrations(tx, MIGRATIONS))
        yield store
    finally:
        shared.users -= 1
        if shared.users == 0:
            _OPEN_FILES.pop(key, None)
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(conn.close)
