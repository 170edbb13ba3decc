"""The client side of an HTTP/2 CONNECT stream on a listener, as a trio byte stream."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from proxy.listeners.exchange import DownstreamGone

if TYPE_CHECKING:
    from proxy.listeners.h2driver import H2Exchange


class H2TunnelStream(trio.abc.HalfCloseableStream):
    """The client side of an HTTP/2 CONNECT stream as a byte stream (DATA frames)."""

    def __init__(self, exchange: H2Exchange) -> None:
        self._ex = exchange
        self._body = exchange.body

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._body is None:
            return b""
        try:
            return await self._body.__anext__()
        except StopAsyncIteration:
            self._body = None
            return b""
        except DownstreamGone as err:
            raise trio.BrokenResourceError(str(err)) from err

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
