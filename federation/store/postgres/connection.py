"""Connections to PostgreSQL: options, error mapping, advisory lock keys, a small pool.

Every connection is in autocommit mode; transactions are explicit (``conn.transaction()``).
TCP keepalives make a dead peer visible within seconds, which bounds how long a broken
leadership connection goes unnoticed.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
import trio

from federation.store.errors import StoreError, StoreUnavailable

T = TypeVar("T")

CHANGES_CHANNEL = "isthmus_changes"
# Advisory lock keys use the two-int form; the first int is our namespace.
WRITE_LOCK = (0x15_7400, 1)
MIGRATION_LOCK = (0x15_7400, 2)
LEADER_NAMESPACE = 0x15_7401

_OPTIONS: dict[str, Any] = {
    "autocommit": True,
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    # The server side too: a leader host that vanishes without closing its socket (power loss,
    # partition) loses its session, and so its advisory lock, within ~11 s instead of hours.
    "options": "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3",
}
APPLICATION_NAME = "isthmus-federation"


def leader_lock_key(name: str) -> tuple[int, int]:
    """The advisory lock key of leadership ``name`` (a stable signed 32-bit hash)."""
    digest = zlib.crc32(name.encode())
    return LEADER_NAMESPACE, digest - 2**32 if digest >= 2**31 else digest


def connect(dsn: str, role: str = "pool") -> psycopg.Connection[Any]:
    """Open an autocommit connection (blocking). Raises :class:`StoreUnavailable`.

    ``role`` (``pool``, ``listener``, ``leader``) is shown in ``pg_stat_activity`` as
    ``isthmus-federation/<role>``.
    """
    try:
        return psycopg.connect(dsn, application_name=f"{APPLICATION_NAME}/{role}", **_OPTIONS)
    except psycopg.Error as err:
        raise StoreUnavailable(f"cannot connect to PostgreSQL ({redact(dsn)}): {err}") from err


def redact(dsn: str) -> str:
    """The DSN without its password, for messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        return "<unparsable dsn>"
    info.pop("password", None)
    return psycopg.conninfo.make_conninfo("", **info)


def map_error(err: psycopg.Error, what: str) -> StoreError:
    """Our error for a psycopg error: broken connections are :class:`StoreUnavailable`."""
    if isinstance(err, psycopg.OperationalError | psycopg.InterfaceError):
        return StoreUnavailable(f"PostgreSQL {what}: {err}")
    return StoreError(f"PostgreSQL {what} failed: {err}")


class ConnectionPool:
    """At most ``size`` connections, each used by one worker thread at a time.

    Owns its connections; :meth:`close` closes the idle ones (busy ones are closed when their
    call returns after close). A connection that broke is dropped, never reused.
    """

    def __init__(self, dsn: str, size: int) -> None:
        self._dsn = dsn
        self._slots = trio.Semaphore(size)
        self._threads = trio.CapacityLimiter(size)
        self._idle: list[psycopg.Connection[Any]] = []
        self._closed = False

    async def run(self, call: Callable[[psycopg.Connection[Any]], T], what: str) -> T:
        """Run ``call(conn)`` in a worker thread on a pooled connection."""
        async with self._slots:
            conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = await trio.to_thread.run_sync(connect, self._dsn, limiter=self._threads)
            try:
                return await trio.to_thread.run_sync(
                    _call_mapped, call, conn, what, limiter=self._threads
                )
            finally:
                if conn.broken or conn.closed or self._closed:
                    await trio.to_thread.run_sync(conn.close, limiter=self._threads)
                else:
                    self._idle.append(conn)

    async def close(self) -> None:
        """Close every idle connection (shielded from cancellation)."""
        self._closed = True
        idle, self._idle = self._idle, []
        with trio.CancelScope(shield=True):
            for conn in idle:
                await trio.to_thread.run_sync(conn.close, limiter=self._threads)


def _call_mapped(
    call: Callable[[psycopg.Connection[Any]], T], conn: psycopg.Connection[Any], what: str
) -> T:
    try:
        return call(conn)
    except psycopg.Error as err:
        raise map_error(err, what) from err
