"""Socket reads and writes that pay trio's scheduler only when the kernel makes them wait.

Every ``trio.socket`` operation that succeeds at once still yields to the run loop (a full
checkpoint: a pass through the scheduler and an ``epoll_wait``). A byte pump moving a GiB does
tens of thousands of them, and on loopback almost all succeed at once. :class:`SocketIO` calls
the non-blocking OS socket directly, waits with ``trio.lowlevel.wait_readable`` /
``wait_writable`` only on ``BlockingIOError``, checks for cancellation on every call, and yields
to other tasks at least every :data:`YIELD_EVERY` calls that did not wait, so one busy tunnel
cannot starve the rest of the process.

Errors: the socket closed by us (or another task) raises ``trio.ClosedResourceError``; any other
``OSError`` raises ``trio.BrokenResourceError`` (the trio stream conventions).
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Awaitable, Callable
from typing import Final

import trio

YIELD_EVERY: Final = 8


def os_socket(sock: trio.socket.SocketType) -> socket.socket | None:
    """The stdlib socket inside a trio socket (trio keeps it as ``_sock``); ``None`` for
    other implementations, which then go through trio's own methods."""
    raw = getattr(sock, "_sock", None)
    return raw if isinstance(raw, socket.socket) else None


def _stream_error(err: OSError) -> trio.ClosedResourceError | trio.BrokenResourceError:
    if err.errno == errno.EBADF:
        return trio.ClosedResourceError("the socket was closed")
    return trio.BrokenResourceError(f"socket error: {err}")


class SocketIO:
    """Direct I/O on one trio socket. One instance per direction (its yield counter is not
    shared); at most one task reads and one task writes at a time (trio's rule for
    ``wait_readable``/``wait_writable``). The caller owns and closes the socket."""

    __slots__ = ("_raw", "_sock", "_streak")

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self._sock = sock
        self._raw = os_socket(sock)
        self._streak = 0

    @property
    def raw(self) -> socket.socket | None:
        """The OS socket (``None`` when only trio's methods can reach it)."""
        return self._raw

    async def _pace(self) -> None:
        """Cancellation point on every call; a schedule point every ``YIELD_EVERY`` calls."""
        self._streak += 1
        if self._streak >= YIELD_EVERY:
            self._streak = 0
            await trio.lowlevel.checkpoint()
        else:
            await trio.lowlevel.checkpoint_if_cancelled()

    async def recv_into(self, view: memoryview) -> int:
        """Read into ``view``; ``0`` at end of stream."""
        raw = self._raw
        if raw is None:
            try:
                return await self._sock.recv_into(view)
            except OSError as err:
                raise _stream_error(err) from err
        await self._pace()
        while True:
            try:
                return raw.recv_into(view)
            except BlockingIOError:
                pass
            except OSError as err:
                raise _stream_error(err) from err
            await self._wait(trio.lowlevel.wait_readable, raw)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Write all of ``data``; returns when the kernel accepted it."""
        raw = self._raw
        with memoryview(data) as view:
            size = len(view)
            sent = 0
            if raw is None:
                try:
                    while sent < size:
                        sent += await self._sock.send(view[sent:])
                except OSError as err:
                    raise _stream_error(err) from err
                return
            await self._pace()
            while sent < size:
                try:
                    sent += raw.send(view[sent:] if sent else view)
                    continue
                except BlockingIOError:
                    pass
                except OSError as err:
                    raise _stream_error(err) from err
                await self._wait(trio.lowlevel.wait_writable, raw)

    async def _wait(
        self, wait: Callable[[socket.socket], Awaitable[None]], raw: socket.socket
    ) -> None:
        """Block until the kernel is ready (a full checkpoint)."""
        self._streak = 0
        try:
            await wait(raw)
        except OSError as err:
            raise _stream_error(err) from err
