"""Coalesced output for one downstream connection.

Exchanges queue bytes in their protocol session and call :meth:`DeferredWriter.schedule`; one
writer task sends everything queued once the other runnable tasks had their turn, so the
response heads, bodies and ends of many concurrent streams (and WINDOW_UPDATEs) leave in one
system call. Bulk senders call :meth:`DeferredWriter.flush` instead, which writes at once and
waits for the transport: that is where backpressure comes from.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import trio

from proxy.listeners.exchange import DownstreamGone

BULK_THRESHOLD = 64 * 1024


class DeferredWriter:
    """Owned by a connection driver; :meth:`run` lives in the connection's nursery and
    cancels ``scope`` (the whole connection) when the transport breaks."""

    __slots__ = ("_lock", "_pull", "_stream", "_wanted", "broken", "scope", "who")

    def __init__(self, stream: trio.abc.SendStream, pull: Callable[[], bytes], who: str) -> None:
        self._stream = stream
        self._pull = pull
        self._lock = trio.StrictFIFOLock()
        self._wanted = trio.Event()
        self.broken = False
        self.scope: trio.CancelScope | None = None
        self.who = who

    def schedule(self) -> None:
        """Ask for a write soon (never blocks)."""
        self._wanted.set()

    async def flush(self) -> None:
        """Write everything queued now; raises :class:`DownstreamGone` if the client left."""
        if self.broken:
            raise DownstreamGone(f"client {self.who} went away")
        async with self._lock:
            data = self._pull()
            if not data:
                return
            try:
                await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as err:
                self._break()
                raise DownstreamGone(f"client {self.who} went away") from err

    async def run(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted = trio.Event()
            # Let every runnable task queue its output first: one write for all of them.
            await trio.lowlevel.cancel_shielded_checkpoint()
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
