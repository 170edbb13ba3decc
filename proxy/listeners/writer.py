"""Coalesced output for one downstream connection.

Exchanges queue bytes in their protocol session and call :meth:`DeferredWriter.schedule`. At
the end of the scheduler's batch (:mod:`proxy.batchend`) everything queued is
written without blocking, so the response heads, bodies and ends of every stream that
progressed in that batch (and WINDOW_UPDATEs) leave in one system call, at once. Only what the
kernel does not take then (or what cannot be written now: another write is in progress) goes
to the connection's writer task, which waits for the transport. Bulk senders call
:meth:`DeferredWriter.flush` instead, which writes at once and waits for the transport: that
is where backpressure comes from.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable

import trio

from proxy.batchend import NEVER_WRITTEN, batch_end
from proxy.listeners.exchange import DownstreamGone
from proxy.tls.sockio import os_socket
from proxy.tls.stream import TLSStream

BULK_THRESHOLD = 64 * 1024


class DeferredWriter:
    """Owned by a connection driver (create it inside ``trio.run``); :meth:`run` lives in the
    connection's nursery and cancels ``scope`` (the whole connection) when the transport
    breaks."""

    __slots__ = (
        "_batch_end",
        "_carry",
        "_lock",
        "_pull",
        "_raw",
        "_registered",
        "_stream",
        "_tls",
        "_wanted",
        "broken",
        "last_write_batch",
        "scope",
        "who",
    )

    def __init__(self, stream: trio.abc.SendStream, pull: Callable[[], bytes], who: str) -> None:
        self._stream = stream
        self._pull = pull
        self._lock = trio.StrictFIFOLock()
        self._wanted = trio.Event()
        self.broken = False
        self.scope: trio.CancelScope | None = None
        self.who = who
        self._batch_end = batch_end()
        self._registered = False
        self.last_write_batch = NEVER_WRITTEN
        # The non-blocking ways to the kernel: the TLS stream's, or the plain socket (what
        # it does not take is carried to the writer's next flush, ahead of anything newer).
        self._tls = stream if isinstance(stream, TLSStream) else None
        self._raw: socket.socket | None = None
        if isinstance(stream, trio.SocketStream):
            self._raw = os_socket(stream.socket)
        self._carry = b""

    def schedule(self) -> None:
        """Ask for a write at the end of this batch (never blocks)."""
        if not self._registered:
            self._registered = True
            self._batch_end.add(self)

    def write_pending(self) -> bool:
        """The end-of-batch write (see :mod:`proxy.batchend`): what is queued goes
        to the kernel without blocking; when that is not possible now (a write in progress,
        earlier bytes still waiting, a full send buffer) the writer task takes over (then
        True). Never raises: a failed transport breaks the connection."""
        self._registered = False
        if self.broken:
            return False
        tls = self._tls
        try:
            if self._lock.locked() or self._carry:
                self._wanted.set()
            elif tls is not None:
                if not tls.send_ready or tls.output_pending:
                    self._wanted.set()
                elif tls.send_nowait((self._pull(),)):
                    self._wanted.set()  # the rest waits in the TLS stream: the writer pushes it
                else:
                    return False
            elif self._raw is not None and self._raw.fileno() >= 0:
                return self._send_raw(self._raw)
            else:
                self._wanted.set()
        except (trio.BrokenResourceError, OSError):
            self._break()
            return False
        return True

    def _send_raw(self, raw: socket.socket) -> bool:
        """True when the kernel did not take it all (the writer task has the rest)."""
        data = self._pull()
        if not data:
            return False
        try:
            sent = raw.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            self._carry = data[sent:]
            self._wanted.set()
            return True
        return False

    async def flush(self) -> None:
        """Write everything queued now; raises :class:`DownstreamGone` if the client left."""
        if self.broken:
            raise DownstreamGone(f"client {self.who} went away")
        lock = self._lock
        try:
            lock.acquire_nowait()  # uncontended: no extra turn through the scheduler
        except trio.WouldBlock:
            await lock.acquire()
        try:
            data = self._pull()
            if self._carry:
                data, self._carry = self._carry + data, b""
            elif not data and not (self._tls is not None and self._tls.output_pending):
                return
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as err:
            self._break()
            raise DownstreamGone(f"client {self.who} went away") from err
        finally:
            lock.release()

    async def run(self) -> None:
        """Write what the end-of-batch write could not, waiting for the transport."""
        while True:
            await self._wanted.wait()
            self._wanted = trio.Event()
            try:
                await self.flush()
            except DownstreamGone:
                return

    async def final_flush(self) -> None:
        """Best effort at connection end (shielded, bounded)."""
        with trio.move_on_after(1.0) as scope:
            scope.shield = True
            with contextlib.suppress(DownstreamGone):
                await self.flush()

    def _break(self) -> None:
        self.broken = True
        if self.scope is not None:
            self.scope.cancel()
