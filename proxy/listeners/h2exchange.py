"""One HTTP/2 stream of a listener connection, as the engine's :class:`Exchange`.

The connection driver (:mod:`proxy.listeners.h2driver`) feeds it events from its reader loop
(``on_data``, ``on_end``, ``on_reset``); the engine pulls the body and answers through it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import trio

from proxy.listeners.exchange import DownstreamGone
from proxy.listeners.h2tunnel import H2TunnelStream
from proxy.protocol import h2wire
from proxy.protocol.events import Headers, RequestReceived
from proxy.protocol.h2session import StreamGone

if TYPE_CHECKING:
    from proxy.listeners.h2driver import H2Connection


# What ``_arrived`` starts as: an Event already set, which nobody waits on. The body reader
# installs a fresh Event before each wait, so the reader loop's ``set()`` before that is a
# no-op; most requests (no body) never wait, and an Event per stream cost ~0.3 µs.
_NOBODY_WAITS = trio.Event()
_NOBODY_WAITS.set()


class H2Exchange:
    """One HTTP/2 stream (see :class:`proxy.listeners.exchange.Exchange`)."""

    def __init__(self, conn: H2Connection, head: RequestReceived) -> None:
        self._conn = conn
        self.stream_id = head.stream_id
        self.downstream = conn.downstream
        self.method = head.method
        self.scheme = head.scheme
        self.authority = head.authority
        self.path = head.path
        self.headers = head.headers
        self._chunks: deque[tuple[bytes, int]] = deque()
        self._body_ended = head.end_stream
        self._arrived = _NOBODY_WAITS
        self.reset_by_peer = False
        self.scope: trio.CancelScope | None = None
        self.timed_out = False
        self.finished = False
        self._started = False
        self.ended = False
        self.body: AsyncIterator[bytes] | None = None if head.end_stream else self._read_body()

    @property
    def response_started(self) -> bool:
        return self._started

    # -- events from the reader loop -------------------------------------------------------
    def on_data(self, data: bytes, flow: int) -> None:
        self._chunks.append((data, flow))
        self._arrived.set()

    def on_end(self) -> None:
        self._body_ended = True
        self._arrived.set()

    def on_reset(self) -> None:
        self.reset_by_peer = True
        self._arrived.set()
        if self.scope is not None:
            self.scope.cancel()

    def release(self) -> None:
        """Return the credit of body bytes nobody consumed."""
        if not self._chunks:  # the usual end: everything was read (no generator: 0.26 µs)
            return
        unread = sum(flow for _, flow in self._chunks)
        self._chunks.clear()
        if unread:
            self._conn.session.acknowledge_received_data(self.stream_id, unread)

    # -- the engine's side -----------------------------------------------------------------
    async def _read_body(self) -> AsyncIterator[bytes]:
        session = self._conn.session
        while True:
            if self._chunks:
                data, flow = self._chunks.popleft()
                session.acknowledge_received_data(self.stream_id, flow)
                if session.has_output:  # credit goes out in batches
                    await self._conn.queued()
                if data:
                    yield data
            elif self._body_ended:
                return
            elif self.reset_by_peer:
                raise DownstreamGone(f"client reset stream {self.stream_id}")
            else:
                self._arrived = trio.Event()
                await self._arrived.wait()

    async def receive_joined(self, max_bytes: int) -> bytes:
        """A tunnel's read: the DATA payloads already received, joined up to ``max_bytes``
        (at least one whole payload, which may be longer), their credit acknowledged at once;
        ``b""`` at END_STREAM. Raises :class:`DownstreamGone` if the client reset the stream.
        Not to be mixed with iterating ``body``."""
        chunks = self._chunks
        while True:
            if chunks:
                data, credit = chunks.popleft()
                if chunks and len(data) < max_bytes:
                    parts = [data]
                    size = len(data)
                    while chunks and size + len(chunks[0][0]) <= max_bytes:
                        more, more_credit = chunks.popleft()
                        parts.append(more)
                        size += len(more)
                        credit += more_credit
                    data = b"".join(parts)
                self._conn.session.acknowledge_received_data(self.stream_id, credit)
                if self._conn.session.has_output:
                    await self._conn.queued()
                if data:
                    return data
            elif self._body_ended:
                return b""
            elif self.reset_by_peer:
                raise DownstreamGone(f"client reset stream {self.stream_id}")
            else:
                self._arrived = trio.Event()
                await self._arrived.wait()

    # -- a tunnel's direct path (proxy.listeners.h2tunnel) ---------------------------------
    def forward(self, forward: Callable[[memoryview, int], None] | None) -> None:
        """Received DATA goes to ``forward`` as it is parsed (see
        :meth:`proxy.protocol.h2core.H2Core.forward_data`); ``None`` queues it again."""
        self._conn.session.forward_data(self.stream_id, forward)

    @property
    def data_queued(self) -> bool:
        """Received DATA waits to be read."""
        return bool(self._chunks)

    def credit(self, flow: int) -> None:
        """``flow`` received bytes were consumed: give the client credit back."""
        self._conn.session.acknowledge_received_data(self.stream_id, flow)

    async def start_response(
        self, status: int, headers: Headers, *, end_stream: bool = False
    ) -> None:
        self._check_alive()
        try:
            self._conn.session.send_headers(self.stream_id, status, headers, end_stream=end_stream)
        except StreamGone as err:
            raise DownstreamGone(str(err)) from err
        self._started = True
        self.ended = end_stream
        await self._conn.queued()

    async def send_data(self, data: bytes, *, end_stream: bool = False) -> None:
        session = self._conn.session
        size = len(data)
        if size:
            self._check_alive()
            if size <= session.send_window(self.stream_id):
                # The common case, one frame: no view and no slices of it (~0.3 µs).
                try:
                    session.send_data(self.stream_id, data, end_stream=end_stream)
                except StreamGone as err:
                    raise DownstreamGone(str(err)) from err
                if end_stream:
                    self.ended = True
                await self._conn.queued(size)
                return
            await self._send_windowed(memoryview(data), end_stream)
        if end_stream and not self.ended:
            await self.end_response()

    async def _send_windowed(self, view: memoryview, end_stream: bool) -> None:
        """DATA frames as the client's windows open (END_STREAM on the last one)."""
        session = self._conn.session
        while view:
            self._check_alive()
            window = session.send_window(self.stream_id)
            if window <= 0:
                await self._conn.wait_window()
                continue
            chunk = view[:window]
            view = view[window:]
            last = end_stream and not view  # END_STREAM on the last DATA frame itself
            try:
                session.send_data(self.stream_id, chunk, end_stream=last)
            except StreamGone as err:
                raise DownstreamGone(str(err)) from err
            if last:
                self.ended = True
            await self._conn.queued(len(chunk))

    async def end_response(self, trailers: Headers | None = None) -> None:
        if self.ended:
            return
        self._check_alive()
        self.ended = True
        try:
            if trailers:
                self._conn.session.send_trailers(self.stream_id, trailers)
            else:
                self._conn.session.end_stream(self.stream_id)
        except StreamGone as err:
            raise DownstreamGone(str(err)) from err
        await self._conn.queued()

    async def abort(self) -> None:
        self.ended = True
        if not self.reset_by_peer:
            self._conn.session.reset_stream(self.stream_id, h2wire.CANCEL)
            await self._conn.queued()

    async def respond_simple(self, status: int, body: bytes) -> None:
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
        try:
            await self.start_response(status, headers)
            await self.send_data(body)
            await self.end_response()
        except DownstreamGone:
            pass

    async def accept_tunnel(self) -> trio.abc.HalfCloseableStream:
        await self.start_response(200, [])
        return H2TunnelStream(self)

    def _check_alive(self) -> None:
        if self.reset_by_peer or self._conn.broken:
            raise DownstreamGone(f"client {self.downstream.remote} reset stream {self.stream_id}")
