"""The change listener: LISTEN on a dedicated connection in a worker thread.

Every replica runs one. Notifications (``"<seq> <topic>"``, sent by ``pg_notify`` inside each
write transaction, so only committed changes arrive) are handed to the replica's
:class:`~federation.store.feed.ChangeHub`. When the connection breaks, the listener reconnects
with exponential backoff, LISTENs again and replays everything after the last ``seq`` it
delivered from the ``changes`` table, so subscribers miss nothing.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg
import trio

from federation.store.errors import StoreUnavailable
from federation.store.feed import ChangeHub
from federation.store.postgres.connection import CHANGES_CHANNEL, connect
from federation.store.records import Change

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.2
_MAX_BACKOFF = 2.0


def parse_payload(payload: str) -> Change | None:
    """``"<seq> <topic>"`` → :class:`Change`; ``None`` for anything else (foreign senders)."""
    seq, _, topic = payload.partition(" ")
    return Change(int(seq), topic) if seq.isdigit() and topic else None


class ChangeListener:
    """Feeds ``hub`` from PostgreSQL notifications. Run :meth:`serve` with ``nursery.start``."""

    def __init__(self, dsn: str, hub: ChangeHub) -> None:
        self._dsn = dsn
        self._hub = hub
        self._stop = threading.Event()
        self.reconnects = 0

    def stop(self) -> None:
        """Ask the thread to exit (it notices within ~0.2 s)."""
        self._stop.set()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """LISTEN, report readiness, then deliver until :meth:`stop` is called.

        Raises :class:`StoreUnavailable` if the first connection fails; later failures are
        retried forever. Cancellation waits for the thread to notice :meth:`stop`, so call
        :meth:`stop` before cancelling.
        """
        conn = await trio.to_thread.run_sync(self._listen)
        try:
            self._hub.last_seq = await trio.to_thread.run_sync(_max_seq, conn)
        except psycopg.Error as err:
            conn.close()
            raise StoreUnavailable(f"PostgreSQL change listener: {err}") from err
        task_status.started()
        token = trio.lowlevel.current_trio_token()
        await trio.to_thread.run_sync(self._loop, conn, token)

    def _listen(self) -> psycopg.Connection[Any]:
        conn = connect(self._dsn, "listener")
        try:
            conn.execute(f"LISTEN {CHANGES_CHANNEL}")
        except psycopg.Error as err:
            conn.close()
            raise StoreUnavailable(f"PostgreSQL LISTEN failed: {err}") from err
        return conn

    def _loop(self, conn: psycopg.Connection[Any] | None, token: trio.lowlevel.TrioToken) -> None:
        backoff = 0.1
        try:
            while not self._stop.is_set():
                try:
                    if conn is None:
                        conn = self._listen()
                        self.reconnects += 1
                        self._catch_up(conn, token)
                        backoff = 0.1
                    # stop_after=1 ends the pass after the first network packet's batch,
                    # so one hop into trio carries every notification of that packet.
                    batch = conn.notifies(timeout=_POLL_SECONDS, stop_after=1)
                    changes = [parse_payload(notify.payload) for notify in batch]
                    self._deliver([c for c in changes if c is not None], token)
                except (psycopg.Error, StoreUnavailable) as err:
                    log.warning("change listener lost PostgreSQL (%s); reconnecting", err)
                    if conn is not None:
                        conn.close()
                    conn = None
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF)
        finally:
            if conn is not None:
                conn.close()

    def _catch_up(self, conn: psycopg.Connection[Any], token: trio.lowlevel.TrioToken) -> None:
        # Writers serialise on one lock and number changes in commit order, so "seq above the
        # last one delivered" is exactly what was missed while disconnected.
        after = trio.from_thread.run_sync(lambda: self._hub.last_seq, trio_token=token)
        rows = conn.execute(
            "SELECT seq, topic FROM changes WHERE seq > %s ORDER BY seq", (after,)
        ).fetchall()
        self._deliver([Change(int(seq), str(topic)) for seq, topic in rows], token)

    def _deliver(self, changes: list[Change], token: trio.lowlevel.TrioToken) -> None:
        if not changes:
            return
        try:
            trio.from_thread.run_sync(self._hub.publish, changes, trio_token=token)
        except trio.RunFinishedError:
            self._stop.set()


def _max_seq(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()
    return 0 if row is None else int(row[0])
