"""The connections of one endpoint: asks :mod:`proxy.upstream.decisions`, then does the I/O.

HTTP/2 connections (peers, h2c) are opened and served by tasks in the pools' nursery, so a
connection outlives the request that caused it; HTTP/1.1 connections are opened and driven
in the requesting task and parked in the pool between requests.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from proxy.errors import ConnectFailure, UpstreamError
from proxy.routes.table import Endpoint
from proxy.upstream import h1idle
from proxy.upstream.decisions import (
    ConnectionView,
    ConnState,
    choose_connection,
    connections_to_close,
    keep_after_response,
)
from proxy.upstream.h1conn import H1Connection
from proxy.upstream.h1idle import IdleProbe
from proxy.upstream.h2conn import ASSUMED_MAX_STREAMS, H2ClientConnection
from proxy.upstream.models import PoolSettings
from proxy.upstream.network import describe
from proxy.upstream.slot import Slot, limits_for

log = logging.getLogger(__name__)

OpenStream = Callable[[Endpoint], Awaitable[trio.abc.Stream]]


class EndpointPool:
    """Connections to one endpoint. ``open_stream`` dials the network stream (TCP, or mTLS
    with peer verification); every connection task runs in ``nursery``."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        settings: PoolSettings,
        open_stream: OpenStream,
        nursery: trio.Nursery,
    ) -> None:
        self.endpoint = endpoint
        self.label = describe(endpoint)
        self.multiplexed = endpoint.kind != "http1"
        self._settings = settings
        self._open_stream = open_stream
        self._nursery = nursery
        self._slots: dict[int, Slot] = {}
        self._next_id = 0
        self._changed = trio.Event()
        self.retiring = False
        self._notifying = False
        self._waiters = 0
        self._idle: list[Slot] = []  # parked HTTP/1.1 connections, most recently idle last
        self._probe = IdleProbe() if h1idle.AVAILABLE and not self.multiplexed else None
        self.limits = limits_for(endpoint, settings)

    @property
    def empty(self) -> bool:
        return not self._slots

    # -- decisions ------------------------------------------------------------------------

    def views(self) -> list[ConnectionView]:
        return [self._view(slot) for slot in self._slots.values()]

    def _view(self, slot: Slot) -> ConnectionView:
        conn = slot.conn
        if isinstance(conn, H2ClientConnection):
            state = slot.state
            if conn.closed:
                state = ConnState.CLOSED
            elif conn.draining and state is ConnState.READY:
                state = ConnState.DRAINING
            used = slot.reserved + conn.active_streams
            return ConnectionView(slot.conn_id, state, used, conn.max_streams, slot.idle_since)
        cap = ASSUMED_MAX_STREAMS if self.multiplexed else 1
        return ConnectionView(slot.conn_id, slot.state, slot.reserved, cap, slot.idle_since)

    def changed(self) -> None:
        """Something changed: wake waiters, stamp idleness, close what the decisions say."""
        if self._notifying:
            return  # closing a connection re-enters; the outer call finishes the job
        self._notifying = True
        try:
            self._stamp_and_reap(trio.current_time())
        finally:
            self._notifying = False
        if self._waiters:
            changed, self._changed = self._changed, trio.Event()
            changed.set()

    def _stream_released(self, conn: H2ClientConnection) -> None:
        """A stream of ``conn`` ended. While ``conn`` still carries streams and nobody waits
        for room, :meth:`changed` would find nothing to do (``conn`` is not idle, nothing
        else changed; idle timeouts of other connections are the periodic :meth:`reap`'s):
        skip it, a clock read and a pass over the slots per request on a peer link."""
        if conn.active_streams and not (self._waiters or conn.draining or conn.closed):
            return
        self.changed()

    def _stamp_and_reap(self, now: float) -> None:
        """Stamp idleness; run :meth:`reap` only when it may close something (a draining
        connection, an idle timeout reached, more idle than ``max_idle``): this runs after
        every HTTP/2 stream, and building the decision's views each time was measurable."""
        idle = 0
        reap = False
        timeout = self.limits.idle_timeout_s
        for slot in self._slots.values():
            conn = slot.conn
            closing = False
            if isinstance(conn, H2ClientConnection):
                if conn.active_streams:
                    slot.idle_since = None
                    continue
                closing = conn.draining or conn.closed
            if slot.reserved:
                slot.idle_since = None
                continue
            idle += 1  # only connections without streams are ever closed
            if slot.idle_since is None and slot.state is ConnState.READY:
                slot.idle_since = now
            if (slot.idle_since is not None and timeout is not None) and (
                now - slot.idle_since >= timeout
            ):
                reap = True
            if closing:
                reap = True
        if reap or idle > self.limits.max_idle:
            self.reap(now)

    def reap(self, now: float) -> None:
        for conn_id in connections_to_close(self.views(), self.limits, now):
            slot = self._slots.get(conn_id)
            if slot is not None:
                self._close_slot(slot)

    def _close_slot(self, slot: Slot) -> None:
        self._unpark(slot)
        self._slots.pop(slot.conn_id, None)
        slot.state = ConnState.CLOSED
        conn = slot.conn
        if isinstance(conn, H2ClientConnection):
            conn.abort()
        elif conn is not None:
            self._nursery.start_soon(conn.aclose)

    # -- acquiring a connection -----------------------------------------------------------

    async def acquire(self) -> Slot:
        """A ready connection with one stream reserved for the caller (release it with
        :meth:`unreserve` or by starting a stream). Raises :class:`ConnectFailure`."""
        slot = self.try_acquire()
        if slot is not None:
            return slot  # no waiting, no cancel scope, no checkpoint: I/O comes next
        slot = self._reserve()
        if slot is not None and slot.state is ConnState.READY and self._usable(slot):
            await trio.lowlevel.checkpoint()
            return slot
        if slot is not None:
            self.unreserve(slot)
        with trio.move_on_after(self._settings.acquire_timeout_s):
            while True:
                slot = self._reserve()
                if slot is None:
                    self._waiters += 1
                    try:
                        await self._changed.wait()
                    finally:
                        self._waiters -= 1
                    continue
                try:
                    if slot.state is ConnState.CONNECTING and not self.multiplexed:
                        await self._connect_h1(slot)
                    await slot.ready.wait()
                except BaseException:
                    self.unreserve(slot)
                    raise
                if slot.error is not None:
                    self.unreserve(slot)
                    raise slot.error
                if not self._usable(slot):
                    self.unreserve(slot)
                    continue
                return slot
        msg = (
            f"no connection to {self.label} became available within "
            f"{self._settings.acquire_timeout_s} s (all {self.limits.max_connections} busy)"
        )
        raise ConnectFailure(msg, endpoint=self.endpoint.key)

    def try_acquire(self) -> Slot | None:
        """The common case of :meth:`acquire`, synchronously: a ready connection with room
        (one stream reserved for the caller), or ``None`` if :meth:`acquire` would wait,
        dial or raise."""
        if self.retiring:
            return None
        slot = self._least_loaded_h2() if self.multiplexed else self._pop_idle()
        if slot is not None:
            slot.reserved += 1
            slot.idle_since = None
        return slot

    def _least_loaded_h2(self) -> Slot | None:
        """What :func:`choose_connection` picks when a ready connection has room (the least
        loaded, then the lowest id), without building views; ``None`` otherwise."""
        best: Slot | None = None
        best_used = 0
        for slot in self._slots.values():
            conn = slot.conn
            if (
                slot.state is not ConnState.READY
                or not isinstance(conn, H2ClientConnection)
                or conn.closed
                or conn.draining
            ):
                continue
            used = slot.reserved + conn.active_streams
            if used < conn.max_streams and (
                best is None
                or used < best_used
                or (used == best_used and slot.conn_id < best.conn_id)
            ):
                best, best_used = slot, used
        return best

    def _pop_idle(self) -> Slot | None:
        """The most recently parked HTTP/1.1 connection (LIFO, as :func:`choose_connection`)."""
        while self._idle:
            slot = self._idle.pop()
            slot.parked = False
            if slot.state is ConnState.READY and slot.reserved == 0:
                return slot
        return None

    def _unpark(self, slot: Slot) -> None:
        if slot.parked:
            slot.parked = False
            self._idle.remove(slot)

    @staticmethod
    def _usable(slot: Slot) -> bool:
        conn = slot.conn
        return not isinstance(conn, H2ClientConnection) or conn.usable

    def _reserve(self) -> Slot | None:
        if self.retiring:
            msg = f"{self.label} was removed from the routing table"
            raise ConnectFailure(msg, endpoint=self.endpoint.key)
        decision = choose_connection(self.views(), self.limits)
        if decision.conn_id is not None:
            slot = self._slots[decision.conn_id]
        elif decision.open_new:
            slot = self._new_slot()
        else:
            return None
        self._unpark(slot)
        slot.reserved += 1
        slot.idle_since = None
        return slot

    def unreserve(self, slot: Slot) -> None:
        slot.reserved -= 1
        self.changed()

    def _new_slot(self) -> Slot:
        self._next_id += 1
        slot = Slot(self._next_id)
        self._slots[slot.conn_id] = slot
        if self.multiplexed:
            self._nursery.start_soon(self._run_h2, slot)
        return slot

    async def _connect_h1(self, slot: Slot) -> None:
        try:
            stream = await self._open_stream(self.endpoint)
        except BaseException as err:
            self._failed(slot, err)
            raise
        conn = slot.conn = H1Connection(
            stream,
            label=self.label,
            endpoint_key=self.endpoint.key,
            read_size=self._settings.read_size,
            nursery=self._nursery,
        )
        fd = conn.fileno
        if self._probe is not None and fd is not None and fd >= 0 and self._probe.add(fd):
            slot.probe_fd = fd
        slot.state = ConnState.READY
        slot.ready.set()

    def _failed(self, slot: Slot, err: BaseException) -> None:
        if isinstance(err, UpstreamError):
            slot.error = err
        else:
            slot.error = ConnectFailure(f"{self.label}: {err!r}", endpoint=self.endpoint.key)
        self._slots.pop(slot.conn_id, None)
        slot.state = ConnState.CLOSED
        slot.ready.set()
        self.changed()

    async def _run_h2(self, slot: Slot) -> None:
        """Own one HTTP/2 connection: dial, serve until closed, forget it."""
        try:
            stream = await self._open_stream(self.endpoint)
        except Exception as err:  # a dial failure fails the waiters, never the pools
            self._failed(slot, err)
            return
        conn = H2ClientConnection(
            stream,
            label=self.label,
            endpoint_key=self.endpoint.key,
            on_change=self.changed,
            on_release=self._stream_released,
            validate_inbound=self.endpoint.kind != "peer",
            stream_window=self._settings.stream_window,
            connection_window=self._settings.connection_window,
            read_size=self._settings.read_size,
            ping_interval_s=self._settings.ping_interval_s,
            ping_timeout_s=self._settings.ping_timeout_s,
        )
        slot.conn = conn
        try:
            await self._serve_h2(slot, conn)
        except Exception:  # a bug in one connection must not take the pools down
            log.exception("%s: connection task failed", self.label)
        finally:
            self._slots.pop(slot.conn_id, None)
            slot.state = ConnState.CLOSED
            slot.ready.set()
            self.changed()

    async def _serve_h2(self, slot: Slot, conn: H2ClientConnection) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(conn.serve)
            if slot.state is ConnState.CLOSED:  # the pool was aborted while we dialled
                conn.abort()
            else:
                slot.state = ConnState.READY
                if self.retiring:
                    conn.close()
            slot.ready.set()
            self.changed()

    # -- HTTP/1.1 release -----------------------------------------------------------------

    async def release_h1(self, slot: Slot, reusable: bool) -> None:
        """Park the connection for reuse, or close it (any error, ``connection: close``,
        unread body, retired pool)."""
        slot.reserved = 0
        if keep_after_response(reusable=reusable, draining=self.retiring):
            self._park(slot)
            return
        self._slots.pop(slot.conn_id, None)
        slot.state = ConnState.CLOSED
        self.changed()
        if isinstance(slot.conn, H1Connection):
            await slot.conn.aclose()

    def _park(self, slot: Slot) -> None:
        """Idle stack push; beyond ``max_idle`` the longest-idle connection closes (what
        :func:`connections_to_close` decides, in O(1)); idle timeouts are left to
        :meth:`reap`, which the pools run periodically."""
        slot.idle_since = trio.current_time()
        slot.parked = True
        if self._probe is not None:
            slot.parked_batch = self._probe.batch
        self._idle.append(slot)
        while len(self._idle) > self.limits.max_idle:
            self._close_slot(self._idle[0])
        if self._waiters:
            changed, self._changed = self._changed, trio.Event()
            changed.set()

    # -- shutdown -------------------------------------------------------------------------

    def retire(self) -> None:
        """Drain: no new requests; connections close as their streams finish."""
        self.retiring = True
        for slot in list(self._slots.values()):
            if isinstance(slot.conn, H2ClientConnection):
                slot.conn.close()
            elif slot.reserved == 0 and slot.state is ConnState.READY:
                self._close_slot(slot)  # idle HTTP/1.1; busy ones close on release
        self.changed()
        if self._probe is not None:  # nothing is parked again, nothing checked
            self._probe.close()

    def abort(self) -> None:
        self.retiring = True
        for slot in list(self._slots.values()):
            self._close_slot(slot)
        self.changed()
        if self._probe is not None:
            self._probe.close()

    def idle_readable(self, slot: Slot) -> bool | None:
        """For :meth:`H1Connection.looks_stale`: whether the idle connection of ``slot`` is
        readable by this batch's poll of the pool's connections (``None``: poll it alone)."""
        if self._probe is None or slot.probe_fd < 0:
            return None
        # The descriptor as registered: if the socket was closed since (and the number
        # reused), looks_stale finds it closed before it looks at this answer.
        return self._probe.readable(slot.probe_fd, slot.parked_batch, len(self._slots))
