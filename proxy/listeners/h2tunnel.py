"""The client side of an HTTP/2 CONNECT stream on a listener, as a trio byte stream."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from proxy.listeners.exchange import DownstreamGone

_JOIN_LIMIT = 1 << 20

if TYPE_CHECKING:
    from proxy.listeners.h2exchange import H2Exchange


class H2TunnelStream(trio.abc.HalfCloseableStream):
    """The client side of an HTTP/2 CONNECT stream as a byte stream (DATA frames)."""

    def __init__(self, exchange: H2Exchange) -> None:
        self._ex = exchange
        self._open = exchange.body is not None
        self._pending = b""

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
