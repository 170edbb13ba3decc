"""The client side of an HTTP/2 CONNECT stream on a listener, as a trio byte stream."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from proxy.listeners.exchange import DownstreamGone
from proxy.tls.sockio import SocketIO

_JOIN_LIMIT = 1 << 20

if TYPE_CHECKING:
    from proxy.listeners.h2exchange import H2Exchange


class H2TunnelStream(trio.abc.HalfCloseableStream):
    """The client side of an HTTP/2 CONNECT stream as a byte stream (DATA frames)."""

    def __init__(self, exchange: H2Exchange) -> None:
        self._ex = exchange
        self._open = exchange.body is not None
        self._pending = b""
        self._sink_busy = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Received DATA, joined up to ``max_bytes`` (default 1 MiB); ``b""`` at the end."""
        limit = _JOIN_LIMIT if max_bytes is None else max_bytes
        if not self._pending:
            if not self._open:
                await trio.lowlevel.checkpoint()
                return b""
            try:
                self._pending = await self._ex.receive_joined(limit)
            except DownstreamGone as err:
                raise trio.BrokenResourceError(str(err)) from err
            if not self._pending:
                self._open = False
                return b""
        else:
            await trio.lowlevel.checkpoint()
        if len(self._pending) <= limit:
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:limit], self._pending[limit:]
        return data

    async def forward_into(self, sink: SocketIO, moved: Callable[[int], None]) -> None:
        """Pass the received DATA to ``sink`` until END_STREAM (then return; the caller
        sends the EOF). Payloads are written to the socket by the connection's reader as it
        parses them, straight from its receive buffer, when the socket takes them at once
        and nothing is queued before them; the rest is copied, queued and written by this
        task. Credit goes back as the kernel takes the bytes (or as this task takes them),
        so a stalled sink stops the client within the flow-control windows. ``moved(n)``
        is called for every ``n`` bytes passed on. Raises ``trio.BrokenResourceError``."""
        if self._pending:
            data, self._pending = self._pending, b""
            await sink.send_all(data)
            moved(len(data))
        raw = sink.raw
        if raw is not None and self._open:
            self._ex.forward(self._direct(raw, moved))
        try:
            while data := await self.receive_some():
                self._sink_busy = True
                try:
                    await sink.send_all(data)
                finally:
                    self._sink_busy = False
                moved(len(data))
        finally:
            self._ex.forward(None)

    def _direct(
        self, raw: socket.socket, moved: Callable[[int], None]
    ) -> Callable[[memoryview, int], None]:
        ex = self._ex

        def take(view: memoryview, flow: int) -> None:
            if self._sink_busy or ex.data_queued:  # keep the order: queue behind them
                ex.on_data(bytes(view), flow)
                return
            try:
                n = raw.send(view)
            except OSError:  # full (or broken: the queued path reports it)
                n = 0
            size = len(view)
            if n:
                moved(n)
            if n == size:
                ex.credit(flow)
                return
            if n:
                ex.credit(n)
            ex.on_data(bytes(view[n:]), flow - n)

        return take

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self._ex.send_data(bytes(data))
        except DownstreamGone as err:
            raise trio.BrokenResourceError(str(err)) from err

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def send_eof(self) -> None:
        try:
            await self._ex.end_response()
        except DownstreamGone as err:
            raise trio.BrokenResourceError(str(err)) from err

    async def aclose(self) -> None:
        """The connection driver owns the stream; closing early resets it."""
        if not self._ex.ended:
            await self._ex.abort()
