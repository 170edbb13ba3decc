"""Leader election with a session-level advisory lock held on a dedicated connection.

The lock lives exactly as long as the connection: if the leader's process dies, the kernel
closes its socket, PostgreSQL ends the session and frees the lock, and a follower's next
``pg_try_advisory_lock`` (every ``retry_interval``) wins. The leader pings its lock connection;
if a ping fails or hangs, its work is cancelled and it campaigns again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from typing import Any

import psycopg
import trio

from federation.store.errors import StoreUnavailable
from federation.store.postgres.connection import connect, leader_lock_key
from federation.store.protocol import LeaderWork

log = logging.getLogger(__name__)

PING_INTERVAL = 0.5
PING_TIMEOUT = 2.0


def _try_lock(conn: psycopg.Connection[Any], key: tuple[int, int]) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", key).fetchone()
    return bool(row and row[0])


def _ping(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT 1").fetchone()


async def _close(conn: psycopg.Connection[Any]) -> None:
    with trio.CancelScope(shield=True):
        await trio.to_thread.run_sync(conn.close, abandon_on_cancel=True)


async def _acquire(
    dsn: str, key: tuple[int, int], retry_interval: float
) -> psycopg.Connection[Any]:
    """Block until this process holds the lock; return the connection that holds it."""
    while True:
        conn: psycopg.Connection[Any] | None = None
        try:
            conn = await trio.to_thread.run_sync(connect, dsn, "leader")
            while True:
                if await trio.to_thread.run_sync(_try_lock, conn, key):
                    return conn
                await trio.sleep(retry_interval)
        except (psycopg.Error, StoreUnavailable) as err:
            log.warning("leader election: %s; retrying", err)
            if conn is not None:
                await _close(conn)
            await trio.sleep(retry_interval)
        except BaseException:
            if conn is not None:
                await _close(conn)
            raise


def _sever(conn: psycopg.Connection[Any]) -> None:
    """Shut the connection's socket down so a thread blocked on it returns (thread-safe)."""
    with contextlib.suppress(OSError, psycopg.Error):
        sock = socket.socket(fileno=os.dup(conn.fileno()))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()


async def _ping_failure(conn: psycopg.Connection[Any]) -> str | None:
    """Ping the lock connection; return why it failed, or ``None`` if it answered in time.

    A ping that hangs (partition) is ended by shutting the socket down after ``PING_TIMEOUT``
    rather than by abandoning the thread, so the connection is never closed under a thread
    that is still using it.
    """
    failure: str | None = None

    async def sever_when_late() -> None:
        nonlocal failure
        await trio.sleep(PING_TIMEOUT)
        failure = f"no answer within {PING_TIMEOUT:.1f} s"
        _sever(conn)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sever_when_late)
        try:
            await trio.to_thread.run_sync(_ping, conn)
        except psycopg.Error as err:
            failure = failure or str(err)
        nursery.cancel_scope.cancel()
    return failure


async def _watch(conn: psycopg.Connection[Any]) -> None:
    """Return when the lock connection stops answering (broken, or hung for PING_TIMEOUT)."""
    while True:
        await trio.sleep(PING_INTERVAL)
        failure = await _ping_failure(conn)
        if failure is not None:
            log.warning("leadership connection lost: %s", failure)
            return


async def _watch_then_cancel(conn: psycopg.Connection[Any], scope: trio.CancelScope) -> None:
    await _watch(conn)
    scope.cancel()


async def run_as_leader(dsn: str, name: str, work: LeaderWork, retry_interval: float) -> None:
    """See :meth:`federation.store.Store.run_as_leader`."""
    key = leader_lock_key(name)
    while True:
        conn = await _acquire(dsn, key, retry_interval)
        error: Exception | None = None
        finished = False
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_watch_then_cancel, conn, nursery.cancel_scope)
                try:
                    await work()
                    finished = True
                except Exception as exc:
                    error = exc
                nursery.cancel_scope.cancel()
        finally:
            # Closing the session releases the lock.
            await _close(conn)
        if error is not None:
            raise error
        if finished:
            return
        log.warning("lost leadership of %r; campaigning again", name)
