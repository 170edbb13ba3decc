"""A trio byte stream over one HTTP/2 CONNECT stream (RFC 9113 §8.5).

``send_all`` becomes DATA frames within the peer's flow-control windows; ``receive_some``
returns DATA payloads and acknowledges their credit as they are taken, so a slow reader slows
the far end. ``send_eof`` sends END_STREAM; ``aclose`` resets the stream if it is unfinished.
"""

from __future__ import annotations

import trio

from proxy.errors import UpstreamError
from proxy.upstream.h2conn import H2ClientConnection
from proxy.upstream.h2stream import H2Stream

_JOIN_LIMIT = 1 << 20  # received DATA joined per read when the caller sets no limit


class H2TunnelStream(trio.abc.HalfCloseableStream):
    """Owned by the caller of ``open_tunnel``, who must ``aclose`` it."""

    def __init__(self, conn: H2ClientConnection, stream: H2Stream) -> None:
        self._conn = conn
        self._stream = stream
        self._pending = b""
        self._closed = False
        self._eof = False
        self._sending = False
        self._receiving = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this tunnel")
        self._check_open()
        self._sending = True
        try:
            await self._conn.send_data(
                self._stream, data if not isinstance(data, bytearray) else memoryview(data)
            )
        except UpstreamError as err:
            raise trio.BrokenResourceError(str(err)) from err
        finally:
            self._sending = False

    async def wait_send_all_might_not_block(self) -> None:
        self._check_open()
        await trio.lowlevel.checkpoint()

    async def send_eof(self) -> None:
        self._check_open()
        self._conn.end_stream(self._stream)
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving on this tunnel")
        self._check_open()
        self._receiving = True
        try:
            if not self._pending and not self._eof:
                try:
                    chunk = await self._conn.read_chunk(self._stream, max_bytes or _JOIN_LIMIT)
                except UpstreamError as err:
                    raise trio.BrokenResourceError(str(err)) from err
                if chunk is None:
                    self._eof = True
                else:
                    self._pending = chunk
            else:
                await trio.lowlevel.checkpoint()
            limit = len(self._pending) if max_bytes is None else max_bytes
            data, self._pending = self._pending[:limit], self._pending[limit:]
            return data
        finally:
            self._receiving = False

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._conn.release(self._stream)
        await trio.lowlevel.checkpoint()

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the tunnel was closed")
