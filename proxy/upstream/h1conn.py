"""One HTTP/1.1 keep-alive client connection (``h11`` sans-IO) over a trio stream.

All I/O happens in the caller's task (one request at a time). The pool returns the connection
after a response only when :attr:`H1Connection.reusable` says both sides finished cleanly and
nobody asked for ``connection: close``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import h11
import trio

from proxy.errors import ResetBeforeHeaders, UpstreamError, UpstreamStreamBroken
from proxy.upstream.models import Headers, UpstreamRequest

_FRAMING = (b"content-length", b"transfer-encoding")
DoneCallback = Callable[[bool], Awaitable[None]]
_IO_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError, h11.ProtocolError)


class H1Connection:
    """An HTTP/1.1 client connection; owns ``stream`` and closes it in :meth:`aclose`."""

    def __init__(self, stream: trio.abc.Stream, *, label: str, endpoint_key: str, read_size: int):
        self.stream = stream
        self._h11 = h11.Connection(h11.CLIENT)
        self._label = label
        self._key = endpoint_key
        self._read_size = read_size
        self._headers_received = False
        self.requests_done = 0

    @property
    def reusable(self) -> bool:
        """True when the exchange finished cleanly and keep-alive was not refused."""
        return self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE

    def looks_stale(self) -> bool:
        """An idle keep-alive socket that is readable was closed (or spoke out of turn) by
        the server: reusing it would fail."""
        if isinstance(self.stream, trio.SocketStream):
            return bool(self.stream.socket.is_readable())
        return False

    async def send_request(self, req: UpstreamRequest) -> None:
        """Send the request head and stream its body (chunked unless the engine gave a
        length). Blocks as the TCP send buffer fills: backpressure from the backend."""
        if self.requests_done:
            self._h11.start_next_cycle()
        self._headers_received = False
        headers: Headers = list(req.headers)
        names = {name for name, _ in headers}
        if b"host" not in names:
            headers.insert(0, (b"host", req.authority))
        if req.body is not None and not names.intersection(_FRAMING):
            headers.append((b"transfer-encoding", b"chunked"))
        await self._send(h11.Request(method=req.method, target=req.path, headers=headers))
        if req.body is not None:
            async for chunk in req.body:
                if chunk:
                    await self._send(h11.Data(data=chunk))
        await self._send(h11.EndOfMessage())

    async def receive_response(self) -> tuple[int, Headers]:
        """Wait for the final response head (1xx are skipped)."""
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Response):
                self._headers_received = True
                return event.status_code, [(n, v) for n, v in event.headers]
            if not isinstance(event, h11.InformationalResponse):
                raise self._error(f"unexpected {type(event).__name__} before the response")

    async def read_chunk(self) -> bytes | None:
        """Next body chunk; ``None`` at the end of the response."""
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                if event.data:
                    return bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self.requests_done += 1
                return None
            else:
                raise self._error(f"unexpected {type(event).__name__} in the response body")

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)

    async def _send(self, event: h11.Event) -> None:
        try:
            data = self._h11.send(event)
            if data:
                await self.stream.send_all(data)
        except _IO_ERRORS as err:
            raise self._error(f"sending failed: {err!r}") from err

    async def _next_event(self) -> object:
        while True:
            try:
                event = self._h11.next_event()
                if event is not h11.NEED_DATA:
                    if isinstance(event, h11.ConnectionClosed):
                        raise self._error("the backend closed the connection")
                    return event
                data = await self.stream.receive_some(self._read_size)
                self._h11.receive_data(bytes(data))
            except _IO_ERRORS as err:
                raise self._error(f"receiving failed: {err!r}") from err

    def _error(self, reason: str) -> UpstreamError:
        msg = f"{self._label}: {reason}"
        if self._headers_received:
            return UpstreamStreamBroken(msg + " after response headers", endpoint=self._key)
        return ResetBeforeHeaders(msg + " before response headers", endpoint=self._key)


class H1Body:
    """Async iterator over a response body; calls ``done(reusable)`` exactly once."""

    def __init__(self, conn: H1Connection, done: DoneCallback) -> None:
        self._conn = conn
        self._done: DoneCallback | None = done

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self._done is None:
            raise StopAsyncIteration
        try:
            chunk = await self._conn.read_chunk()
        except BaseException:
            await self.finish(reusable=False)
            raise
        if chunk is None:
            await self.finish(reusable=self._conn.reusable)
            raise StopAsyncIteration
        return chunk

    async def finish(self, *, reusable: bool) -> None:
        done, self._done = self._done, None
        if done is not None:
            await done(reusable)
