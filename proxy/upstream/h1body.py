"""Reading an HTTP/1.1 response body (length-framed, chunked or until close): the part of
:class:`proxy.upstream.h1conn.H1Connection` after the response head.

A mixin over the connection's buffer and reads (``_fill``, ``_error``), as the HTTP/2 core's
receive side is; the framing decision comes from :func:`proxy.upstream.h1wire.response_framing`.
"""

from __future__ import annotations

from proxy.errors import UpstreamError
from proxy.upstream import h1wire


class H1BodyReader:
    """The response-body half of an HTTP/1.1 client connection."""

    _buffer: bytearray
    #: what is left of the body: a byte count, ``None`` (chunked) or ``True`` (until close)
    _remaining: int | bool | None
    _chunk_left: int  # chunked: bytes left in the current chunk (-1: need its CRLF)
    _received_all: bool
    _headers_received: bool
    _counted: bool
    requests_done: int

    async def _fill(self) -> bool:
        """Read more into the buffer; False at EOF (the connection's)."""
        raise NotImplementedError

    def _error(self, reason: str) -> UpstreamError:
        """The failure to raise, naming ``reason`` (the connection's)."""
        raise NotImplementedError

    async def read_chunk(self) -> bytes | None:
        """Next body chunk; ``None`` at the end of the response."""
        while True:
            remaining = self._remaining
            if remaining is None:
                data = await self._chunked_piece()
            elif remaining is True:
                data = bytes(self._buffer) if self._buffer else b""
                self._buffer.clear()
                if not data:
                    if not await self._fill():
                        self._finish()
                        return None
                    continue
            elif remaining == 0:
                self._finish()
                return None
            else:
                if not self._buffer and not await self._fill():
                    raise self._error("receiving failed: the backend closed mid-body")
                data = self._take(remaining)
            if data:
                return data
            if self._received_all:
                self._finish()
                return None

    def buffered_chunk(self) -> bytes | None:
        """What :meth:`read_chunk` returns when that is buffered bytes of a length-framed
        body (no wait, no coroutine); ``None``: call ``read_chunk``."""
        remaining = self._remaining
        if remaining is True or remaining is None or remaining <= 0 or not self._buffer:
            return None
        return self._take(remaining)

    def _take(self, remaining: int) -> bytes:
        """Up to ``remaining`` buffered bytes of a length-framed body."""
        data = bytes(self._buffer[:remaining])
        del self._buffer[: len(data)]
        self._remaining = remaining - len(data)
        return data

    def _finish(self) -> None:
        self._received_all = True
        if not self._counted:  # once per exchange, however the end was noticed
            self._counted = True
            self.requests_done += 1

    @property
    def body_buffered(self) -> bool:
        """Every byte still to be read of a length-framed response body is buffered
        (reading it will not wait for the backend)."""
        remaining = self._remaining
        if not self._headers_received or remaining is None or remaining is True:
            return self._received_all
        return len(self._buffer) >= remaining

    @property
    def body_complete(self) -> bool:
        """The whole response body was read: its length reached, or its last chunk seen."""
        return self._headers_received and (self._received_all or self._remaining == 0)

    async def _chunked_piece(self) -> bytes:
        """Data of the current chunk as far as buffered; b"" after the last chunk."""
        while True:
            if self._chunk_left > 0:
                if not self._buffer and not await self._fill():
                    raise self._error("receiving failed: the backend closed mid-body")
                data = bytes(self._buffer[: self._chunk_left])
                del self._buffer[: len(data)]
                self._chunk_left -= len(data)
                if self._chunk_left == 0:
                    self._chunk_left = -1  # its CRLF comes next
                return data
            if self._chunk_left < 0:  # the CRLF after a chunk's data
                if not await self._expect_crlf():
                    continue
                self._chunk_left = 0
            try:
                parsed = h1wire.parse_chunk_size(self._buffer)
            except h1wire.WireError as err:
                raise self._error(f"receiving failed: {err}") from err
            if parsed is None:
                if not await self._fill():
                    raise self._error("receiving failed: the backend closed mid-body")
                continue
            size, consumed = parsed
            del self._buffer[:consumed]
            if size:
                self._chunk_left = size
                continue
            await self._skip_trailers()
            self._received_all = True
            return b""

    async def _expect_crlf(self) -> bool:
        while len(self._buffer) < 2 and not self._buffer.startswith(b"\n"):
            if not await self._fill():
                raise self._error("receiving failed: the backend closed mid-body")
        if self._buffer.startswith(b"\r\n"):
            del self._buffer[:2]
        elif self._buffer.startswith(b"\n"):
            del self._buffer[:1]
        else:
            raise self._error("receiving failed: missing CRLF after chunk data")
        return True

    async def _skip_trailers(self) -> None:
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > h1wire.MAX_HEAD:
                    raise self._error("receiving failed: trailers too long")
                if not await self._fill():
                    raise self._error("receiving failed: the backend closed mid-body")
                continue
            line = bytes(self._buffer[:end]).rstrip(b"\r")
            del self._buffer[: end + 1]
            if not line:
                return
