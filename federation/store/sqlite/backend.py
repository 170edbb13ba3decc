"""SQLite backend: stdlib ``sqlite3`` in WAL mode, blocking calls in ``trio.to_thread``.

Each store owns one connection used by one worker thread at a time (a ``CapacityLimiter(1)``),
so calls are serialised per store; stores on the same file serialise through SQLite's own lock.
Change notifications and leadership are shared in-process by every store open on the same file
(the "replicas" of an embedded federation all live in one process).

Group commits of reports and ACKs, and a rebuild's snapshots, are the exception: a WAL commit
of a few small rows takes ~0.1 ms (1,000 snapshots: ~20 ms of CPU, which in a worker thread
took 40-70 ms while the busy loop competed for the GIL, with every push of the rebuild
waiting), while a worker-thread hop costs several scheduler passes of a busy event loop (10-40
ms each under load: the ACKs of a health flip waited on them). They run on the event loop, on a
second connection that never waits for a lock (``busy_timeout`` 0: if another connection
writes, the batch goes to a worker thread as any write does) and never checkpoints: no commit
does, on either connection; a background task checkpoints the WAL (PASSIVE, its own connection,
in a worker thread) shortly after writes, so no fsync ever runs on the event loop or delays a
commit.
"""

from __future__ import annotations

import logging
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
#: How soon after a write the WAL is checkpointed (copied into the database file, fsynced).
CHECKPOINT_DELAY_S = 1.0
_log = logging.getLogger(__name__)


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


def _connect(path: Path, *, timeout: float = 10.0) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        # Token hashes and credentials fingerprints live here: owner-only from the start.
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=timeout)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")  # the checkpoint task does it, off every commit
    return conn


def _is_busy(err: sqlite3.Error) -> bool:
    return isinstance(err, sqlite3.OperationalError) and "locked" in str(err).lower()


class SqliteStore(SqlStore):
    """A :class:`~federation.store.Store` over one SQLite file; see :func:`open_sqlite_store`."""

    backend_name = "sqlite"

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        shared: _SharedFile,
        inline_conn: sqlite3.Connection | None = None,
    ) -> None:
        self.path = path
        self._conn = conn
        #: the connection of batch writes run on the event loop (``busy_timeout`` 0); None:
        #: every write in a worker thread
        self._inline_conn = inline_conn
        self._shared = shared
        self._limiter = trio.CapacityLimiter(1)
        #: set by every commit; the checkpoint task waits for it
        self.wrote = trio.Event()
        #: batch writes committed on the event loop / sent to a thread (for tests, measurements)
        self.inline_commits = 0
        self.threaded_batches = 0
        self.checkpoints = 0

    def _transaction_sync(
        self, body: Body[T], write: bool, conn: sqlite3.Connection | None = None
    ) -> tuple[T, list[Change]]:
        conn = conn or self._conn
        cursor = conn.cursor()
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
            if conn.in_transaction:
                conn.rollback()
            if conn is self._inline_conn and _is_busy(err):
                raise _Busy from err
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
        self.wrote.set()
        return result

    async def _write_batch(self, body: Body[T]) -> T:
        """Commit on the event loop (see the module docstring), or in a worker thread when
        another connection holds the write lock. Same transaction, same durability."""
        if self._inline_conn is not None:
            try:  # no scheduler pass when the connection is free (a pass is 5-20 ms when busy)
                self._limiter.acquire_nowait()
            except trio.WouldBlock:
                await self._limiter.acquire()
            try:
                result, changes = self._transaction_sync(body, True, self._inline_conn)
            except _Busy:
                pass
            else:
                self.inline_commits += 1
                self._shared.hub.publish(changes)
                self.wrote.set()
                return result
            finally:
                self._limiter.release()
        self.threaded_batches += 1
        return await self._write(body)

    async def run_checkpoints(
        self,
        conn: sqlite3.Connection,
        *,
        delay_s: float = CHECKPOINT_DELAY_S,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Checkpoint the WAL on ``conn`` (PASSIVE: never waits for nor blocks a writer) in a
        worker thread, ``delay_s`` after writes, until cancelled. A failure is logged and
        tried again after the next write. Never returns."""
        task_status.started()
        while True:
            await self.wrote.wait()
            self.wrote = trio.Event()
            await trio.sleep(delay_s)
            try:
                await trio.to_thread.run_sync(conn.execute, "PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as err:
                _log.warning("sqlite database %s: WAL checkpoint failed: %s", self.path, err)
            else:
                self.checkpoints += 1

    def changes(self) -> AbstractAsyncContextManager[AsyncIterator[Change]]:
        return self._shared.hub.subscribe()

    async def run_as_leader(
        self, name: str, work: LeaderWork, *, retry_interval: float = 0.5
    ) -> None:
        lock = self._shared.leader_locks.setdefault(name, trio.Lock())
        async with lock:
            await work()


class _Busy(Exception):
    """Another connection holds the write lock (an event-loop commit never waits for it)."""


def _connect_all(path: Path) -> list[sqlite3.Connection]:
    """The store's connection, its event-loop one (no lock waits) and the checkpoint one."""
    conns: list[sqlite3.Connection] = []
    try:
        for timeout in (10.0, 0.0, 10.0):
            conns.append(_connect(path, timeout=timeout))
    except BaseException:
        for conn in conns:
            conn.close()
        raise
    return conns


@asynccontextmanager
async def open_sqlite_store(config: StoreConfig) -> AsyncIterator[SqliteStore]:
    """Open (creating if needed) the SQLite database at ``config.url`` and migrate it.

    The connections and the checkpoint task end when the block exits. Raises
    ``StoreConfigError`` for a bad URL, ``StoreUnavailable`` if the file cannot be opened,
    ``SchemaVersionError`` if it is newer.
    """
    path = sqlite_path(config.url)
    try:
        conns = await trio.to_thread.run_sync(_connect_all, path)
    except (OSError, sqlite3.Error) as err:
        raise StoreUnavailable(f"cannot open sqlite database {path}: {err}") from err
    conn, inline_conn, checkpoint_conn = conns
    key = str(path.resolve())
    shared = _OPEN_FILES.setdefault(key, _SharedFile())
    shared.users += 1
    try:
        store = SqliteStore(path, conn, shared, inline_conn)
        await store._write(lambda tx: apply_migrations(tx, MIGRATIONS))
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(store.run_checkpoints, checkpoint_conn)
                yield store
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # The caller's block runs inside our nursery: hand back its own exception, as the
            # PostgreSQL backend does, so ``except StoreError`` around ``open_store`` works.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from group.exceptions[0].__cause__
            raise
    finally:
        shared.users -= 1
        if shared.users == 0:
            _OPEN_FILES.pop(key, None)
        with trio.CancelScope(shield=True):
            for each in conns:
                await trio.to_thread.run_sync(each.close)
