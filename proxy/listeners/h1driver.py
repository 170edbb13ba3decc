"""The HTTP/1.1 connection driver: reads requests with h11, one at a time, into exchanges.

Owns nothing but the session; the caller owns (and closes) the transport stream.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterator

import trio

from proxy.listeners.exchange import Downstream, DownstreamGone, RequestHandler
from proxy.listeners.limits import DrainSignal, ListenerLimits
from proxy.listeners.writer import BULK_THRESHOLD, DeferredWriter
from proxy.protocol.events import (
    ConnectionTerminated,
    DataReceived,
    EndOfStream,
    Event,
    Headers,
    RequestReceived,
)
from proxy.protocol.h1session import H1ServerSession
from proxy.tls.sockio import SocketIO


class _PrefixedStream(trio.abc.HalfCloseableStream):
    """The client side of a CONNECT tunnel: bytes that came with the request head first."""

    def __init__(self, stream: trio.abc.HalfCloseableStream, prefix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix
        self._socket_io = SocketIO(stream.socket) if isinstance(stream, trio.SocketStream) else None

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            return data
        return bytes(await self._stream.receive_some(max_bytes))

    async def receive_into(self, view: memoryview) -> int:
        """Read into the caller's buffer (the tunnel pump's): no allocation, and on a plain
        socket no scheduler pass per call when data is there (:mod:`proxy.tls.sockio`)."""
        if self._prefix or self._socket_io is None:
            data = await self.receive_some(len(view))
            view[: len(data)] = data
            return len(data)
        return await self._socket_io.recv_into(view)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        """The connection driver closes the transport; nothing to do here."""


class H1Connection:
    """Serve HTTP/1.1 requests on ``stream`` until the client closes, a limit trips, a
    drain is requested, or the connection cannot be reused. Never raises for client
    misbehaviour: malformed heads get 400, oversized heads 431, slow heads 408, then close."""

    def __init__(
        self,
        stream: trio.abc.HalfCloseableStream,
        handler: RequestHandler,
        downstream: Downstream,
        limits: ListenerLimits,
        drain: DrainSignal,
        *,
        initial: bytes = b"",
    ) -> None:
        self.stream = stream
        self.session = H1ServerSession(limits.max_header_list_size)
        self.handler = handler
        self.downstream = downstream
        self.limits = limits
        self.drain = drain
        self.events: deque[Event] = deque()
        self._initial = initial
        self.closing = False
        self.writer = DeferredWriter(stream, self._pull_output, downstream.remote)
        self.unflushed = 0
        self.idle_scope: trio.CancelScope | None = None

    async def serve(self) -> None:
        """Serve until done; a drain closes the connection between requests."""
        async with trio.open_nursery() as nursery:
            self.writer.scope = nursery.cancel_scope
            nursery.start_soon(self.writer.run)
            nursery.start_soon(self._close_idle_on_drain)
            try:
                await self._serve()
            finally:
                await self.writer.final_flush()
                nursery.cancel_scope.cancel()

    async def _close_idle_on_drain(self) -> None:
        await self.drain.wait()
        if self.idle_scope is not None:
            self.idle_scope.cancel()

    async def _serve(self) -> None:
        first = True
        while not self.closing:
            head = await self._next_request(first)
            first = False
            if head is None:
                return
            exchange = H1Exchange(self, head)
            await self._run(exchange)
            if self.closing or self.session.upgraded or not await exchange.finish():
                return
            if self.drain.requested or not self.session.start_next_cycle():
                return
            self.events.clear()
            self.events.extend(self.session.next_events())

    async def _run(self, exchange: H1Exchange) -> None:
        # A CONNECT tunnel lives as long as its two sides do; only exchanges are bounded.
        timeout = math.inf if exchange.method == b"CONNECT" else self.limits.request_timeout_s
        with trio.move_on_after(timeout) as scope:
            try:
                await self.handler.handle(exchange)
            except DownstreamGone:
                self.closing = True
                return
        if scope.cancelled_caught:
            if not exchange.response_started:
                await exchange.respond_simple(504, b"request timeout")
            self.closing = True

    async def _next_request(self, first: bool) -> RequestReceived | None:
        """Wait for a request head: ``idle_timeout_s`` for its first byte on a reused
        connection (a drain ends that wait), ``header_read_timeout_s`` for the whole head
        (then ``408``). One cancel scope whose deadline moves, not two."""
        if self._initial:
            self.events.extend(self.session.receive_data(self._initial))
            self._initial = b""
        reading_head = first or bool(self.events)
        limits = self.limits
        timeout = limits.header_read_timeout_s if reading_head else limits.idle_timeout_s
        # the deadline given at creation: setting it on an entered scope re-registers it
        with trio.CancelScope(deadline=trio.current_time() + timeout) as scope:
            self.idle_scope = None if reading_head else scope
            while True:
                while self.events:
                    ev = self.events.popleft()
                    if isinstance(ev, RequestReceived):
                        return ev
                    if isinstance(ev, ConnectionTerminated):
                        if ev.status_hint is not None:
                            await self._reject(ev.status_hint, ev.reason.encode())
                        return None
                if not reading_head and self._head_in_progress():
                    reading_head = True
                    self.idle_scope = None
                    scope.deadline = trio.current_time() + limits.header_read_timeout_s
                if not await self._pump():
                    return None
        self.idle_scope = None
        if reading_head:
            await self._reject(408, b"request head not received in time")
        return None

    def _head_in_progress(self) -> bool:
        """Some bytes of the next request head arrived (h11 buffers a partial head)."""
        return not self.session.awaiting_request or bool(self.session.buffered)

    async def _pump(self) -> bool:
        """Read once from the socket into events; ``False`` when the client closed."""
        try:
            data = await self.stream.receive_some(self.limits.read_size)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        self.events.extend(self.session.receive_data(bytes(data)))
        return bool(data)

    async def _reject(self, status: int, reason: bytes) -> None:
        self.session.reject(status, reason)
        await self.flush()
        self.closing = True

    async def flush(self) -> None:
        """Write everything queued now; raises :class:`DownstreamGone` if the client left."""
        try:
            await self.writer.flush()
        except DownstreamGone:
            self.closing = True
            raise

    async def queued(self, size: int = 0) -> None:
        """Output was queued: written soon, or now once a bulk amount is pending."""
        self.unflushed += size
        if self.unflushed >= BULK_THRESHOLD:
            await self.flush()
        else:
            self.writer.schedule()

    def _pull_output(self) -> bytes:
        self.unflushed = 0
        return self.session.data_to_send()


class H1Exchange:
    """One HTTP/1.1 request on an :class:`H1Connection` (see :class:`Exchange`)."""

    def __init__(self, conn: H1Connection, head: RequestReceived) -> None:
        self._conn = conn
        self.downstream = conn.downstream
        self.method = head.method
        self.scheme = head.scheme
        self.authority = head.authority
        self.path = head.path
        self.headers = head.headers
        self._body_done = _body_is_empty(head)
        self.body: AsyncIterator[bytes] | None = None if self._body_done else self._read_body()
        self._started = False
        self._ended = False
        self._trailers_allowed = False  # chunked response to a client that sent te: trailers

    @property
    def response_started(self) -> bool:
        return self._started

    async def _read_body(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn.session.send_continue():
            await conn.flush()  # the client holds its body until it sees 100 Continue
        while not self._body_done:
            while conn.events:
                ev = conn.events.popleft()
                if isinstance(ev, DataReceived):
                    yield ev.data
                elif isinstance(ev, EndOfStream):
                    self._body_done = True
                    return
                elif isinstance(ev, ConnectionTerminated):
                    conn.closing = True
                    raise DownstreamGone(f"client {conn.downstream.remote}: {ev.reason}")
            if not await conn._pump():
                conn.closing = True
                raise DownstreamGone(f"client {conn.downstream.remote} closed mid-body")

    async def start_response(
        self, status: int, headers: Headers, *, end_stream: bool = False
    ) -> None:
        close = self._conn.drain.requested or not self._body_done
        self._conn.session.send_response(status, headers, close=close)
        self._started = True
        self._trailers_allowed = _accepts_trailers(self.headers) and self._chunked(status, headers)
        if close:
            self._conn.closing = not self._body_done or self._conn.closing
        if end_stream:
            await self.end_response()
        else:
            await self._conn.queued()

    async def send_data(self, data: bytes, *, end_stream: bool = False) -> None:
        if self._conn.writer.broken:
            raise DownstreamGone(f"client {self.downstream.remote} went away")
        self._conn.session.send_data(data)
        await self._conn.queued(len(data))
        if end_stream:
            await self.end_response()

    async def end_response(self, trailers: Headers | None = None) -> None:
        """Ends the body. ``trailers`` are sent as chunked trailers when the client asked for
        them (``te: trailers``) and the response is chunked; otherwise they are dropped
        (HTTP/1.1 has nowhere else to put them)."""
        if self._ended:
            return
        self._ended = True
        if trailers and self._trailers_allowed:
            self._conn.session.end_response(_trailer_fields(trailers))
        else:
            self._conn.session.end_response()
        await self._conn.queued()

    def _chunked(self, status: int, headers: Headers) -> bool:
        """Whether h11 frames this response with chunked encoding (RFC 9112 §6)."""
        if status in (204, 304) or status < 200 or self.method == b"HEAD":
            return False
        if self._conn.session.client_http_version < b"1.1":
            return False
        return not any(name == b"content-length" for name, _ in headers)

    async def abort(self) -> None:
        self._conn.closing = True

    async def respond_simple(self, status: int, body: bytes) -> None:
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
        try:
            await self.start_response(status, headers)
            await self.send_data(body)
            await self.end_response()
        except DownstreamGone:
            pass

    async def accept_tunnel(self) -> trio.abc.HalfCloseableStream:
        self._conn.session.accept_tunnel()
        self._started = self._ended = True
        await self._conn.flush()
        return _PrefixedStream(self._conn.stream, self._conn.session.trailing_data)

    async def finish(self) -> bool:
        """After the handler: the connection is reusable only if the response completed and
        the request body was read to its end."""
        return self._ended and self._body_done and not self._conn.closing


# Fields that never go into a trailer section (RFC 9110 §6.5.1), plus hop-by-hop ones.
_NOT_IN_TRAILERS = frozenset(
    {
        b"content-length",
        b"content-type",
        b"host",
        b"transfer-encoding",
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"upgrade",
    }
)


def _accepts_trailers(headers: Headers) -> bool:
    """The request carries ``te: trailers`` (possibly among other codings)."""
    for name, value in headers:
        if name == b"te":
            for coding in value.split(b","):
                if coding.split(b";", 1)[0].strip().lower() == b"trailers":
                    return True
    return False


def _trailer_fields(trailers: Headers) -> Headers:
    return [
        (name, value)
        for name, value in trailers
        if not name.startswith(b":") and name.lower() not in _NOT_IN_TRAILERS
    ]


def _body_is_empty(head: RequestReceived) -> bool:
    if head.method == b"CONNECT":
        return True
    for name, value in head.headers:
        if name == b"content-length":
            return value.strip() == b"0"
        if name == b"transfer-encoding":
            return False
    return True
