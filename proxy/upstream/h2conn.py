"""One HTTP/2 client connection (our lean sans-IO codec, :mod:`proxy.protocol.h2core`) over a
trio stream.

One reader task demultiplexes frames to streams, one writer task flushes whatever ``h2`` has
queued (so many streams share one ``send_all``), and request-body pumps run in the
connection's nursery. Flow control both ways: DATA is sent only within the peer's windows
(waiting for WINDOW_UPDATE), and received DATA is acknowledged only as the consumer takes it.

This module holds the connection's lifecycle, its I/O tasks and the consumer's side of a
stream; frames in are :mod:`proxy.upstream.h2inbound`, request heads and bodies out
:mod:`proxy.upstream.h2send`, the response-head deadlines :func:`~proxy.upstream.h2stream.
header_deadlines`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from proxy.batchend import NEVER_WRITTEN, batch_end
from proxy.deadlines import DeadlineHeap
from proxy.errors import UpstreamStreamBroken
from proxy.protocol.h2core import H2Core, H2StateError
from proxy.tls.sockio import SocketIO
from proxy.tls.stream import TLSStream
from proxy.upstream.h2send import RequestSendMixin
from proxy.upstream.h2stream import H2Stream, header_deadlines

log = logging.getLogger(__name__)

ASSUMED_MAX_STREAMS = 100
# What we let the peer send per frame (RFC 9113 allows up to 16 MiB): bulk DATA in a few big
# frames instead of one per 16 KiB, bounded by our windows anyway.
MAX_FRAME_SIZE = 1 << 20


class H2ClientConnection(RequestSendMixin):
    """An HTTP/2 client connection. Run :meth:`serve` in a nursery (it owns the reader, the
    writer and the body pumps, and closes the network stream when it returns).

    ``on_change`` is called (synchronously) whenever capacity or state changes: a stream was
    released, SETTINGS changed, GOAWAY arrived, the connection closed; when ``on_release`` is
    given, a released stream calls it (with this connection) instead. ``label`` names the
    upstream in error messages. ``validate_inbound`` keeps the RFC 9113 §8.2 header checks on
    for backends we do not authenticate; outbound headers are not re-checked (the engine
    sanitized them). After a GOAWAY the connection keeps serving the streams it spared.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        label: str,
        endpoint_key: str,
        on_change: Callable[[], None],
        on_release: Callable[[H2ClientConnection], None] | None = None,
        validate_inbound: bool,
        stream_window: int,
        connection_window: int,
        read_size: int,
        ping_interval_s: float | None = None,
        ping_timeout_s: float = 5.0,
    ) -> None:
        self._h2 = H2Core(
            client=True,
            validate=validate_inbound,
            initial_window_size=stream_window,
            connection_window_size=connection_window,
            max_frame_size=MAX_FRAME_SIZE,
        )
        self._stream = stream
        # DATA is written from the sending task itself when the TLS stream is free (no
        # switch to the writer task, no copy of the payload into the frame buffer).
        self._tls = stream if isinstance(stream, TLSStream) else None
        self._label = label
        self._key = endpoint_key
        self._on_change = on_change
        self._on_release = on_release
        self._read_size = read_size
        # Reads go into one reusable buffer (the codec copies what it keeps): decrypted
        # straight into it from a TLS stream, read with SocketIO from plain TCP (trio's
        # receive_some copies, and adds a schedule point after a read that did not wait).
        self._view: memoryview | None = None
        self._socket_io: SocketIO | None = None
        if self._tls is not None:
            self._view = memoryview(bytearray(read_size))
        elif isinstance(stream, trio.SocketStream):
            self._socket_io = SocketIO(stream.socket)
            if self._socket_io.raw is not None:
                self._view = memoryview(bytearray(read_size))
        self._streams: dict[int, H2Stream] = {}
        self._write_wanted = trio.Event()
        self._batch_end = batch_end()
        self._registered = False
        self.last_write_batch = NEVER_WRITTEN
        self._flushed = trio.Event()
        self._pending_bytes = 0
        self._nursery: trio.Nursery | None = None
        self.active_streams = 0
        self.draining = False
        self.closed = False
        self.last_stream_id: int | None = None
        self._settings_received = False
        self._ping_interval_s = ping_interval_s
        self._ping_timeout_s = ping_timeout_s
        self._ping_acked = trio.Event()
        self._broken = False
        # Streams awaiting response headers by a deadline: one timer task per connection
        # instead of a cancel scope per request.
        self._deadlines: DeadlineHeap[H2Stream] = header_deadlines()

    # -- state the pool reads -------------------------------------------------------------

    @property
    def max_streams(self) -> int:
        """The peer's SETTINGS_MAX_CONCURRENT_STREAMS; 100 (RFC 9113's advice) until its
        SETTINGS arrive, so an early burst is not refused."""
        if not self._settings_received:
            return ASSUMED_MAX_STREAMS
        return min(self._h2.remote_max_streams, 1000)

    @property
    def usable(self) -> bool:
        return not (self.closed or self.draining)

    # -- lifecycle ------------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Send the preface, report ready, then read until the peer closes, a keepalive PING
        goes unanswered, or we are cancelled. On return every unfinished stream has failed and
        the network stream is closed (after a best-effort GOAWAY)."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._write_loop)
                nursery.start_soon(self._deadlines.run)
                if self._ping_interval_s is not None:
                    nursery.start_soon(self._keepalive_loop, self._ping_interval_s)
                self._kick()
                task_status.started()
                await self._read_loop()
                nursery.cancel_scope.cancel()
        finally:
            self._shut("the connection closed")
            with trio.CancelScope(shield=True):
                await self._goodbye()

    async def _goodbye(self) -> None:
        if not self._broken:
            with trio.move_on_after(0.5):
                try:
                    self._h2.close()
                    await self._stream.send_all(self._h2.data_to_send())
                except (trio.BrokenResourceError, trio.BusyResourceError, OSError):
                    pass  # best effort: the peer learns from the TCP close instead
                except trio.ClosedResourceError:
                    pass  # already closed
        await trio.aclose_forcefully(self._stream)

    async def _keepalive_loop(self, interval_s: float) -> None:
        """PING every ``interval_s``; no ACK within ``ping_timeout_s`` means the peer (or the
        path to it) is gone silently: abort, so the pool dials a fresh connection."""
        while True:
            await trio.sleep(interval_s)
            self._ping_acked = trio.Event()
            try:
                self._h2.ping(b"isthmus!")
            except H2StateError:
                self.abort()
                return
            self._kick()
            with trio.move_on_after(self._ping_timeout_s):
                await self._ping_acked.wait()
            if not self._ping_acked.is_set():
                self._broken = True
                self.abort()
                return

    def close(self) -> None:
        """Graceful: no new streams; the pool closes it when its streams are done."""
        if not self.draining:
            self.draining = True
            self._on_change()

    def abort(self) -> None:
        """Close now: unfinished streams fail, ``serve`` returns."""
        self._shut("the connection was closed by the proxy")
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    def _shut(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        for s in list(self._streams.values()):
            self._fail(s, reason)
        self._on_change()
        self._flushed.set()

    # -- I/O tasks ------------------------------------------------------------------------

    def _kick(self) -> None:
        """Output was queued: it is written at the end of this scheduler batch (see
        :mod:`proxy.batchend`), with everything else queued in the batch."""
        if not self._registered:
            self._registered = True
            self._batch_end.add(self)

    def write_pending(self) -> bool:
        """The end-of-batch write: on a TLS stream that is free, straight to the kernel
        (no turn of the writer task); otherwise, or for what the kernel did not take, the
        writer task (then True). Never raises (a broken stream aborts the connection)."""
        self._registered = False
        if self.closed:
            return False
        tls = self._tls
        if tls is None or not tls.send_ready or tls.output_pending:
            self._write_wanted.set()
            return True
        try:
            if self._write_now(tls):
                return True
        except UpstreamStreamBroken:
            return False  # aborted: every stream learns it
        flushed, self._flushed = self._flushed, trio.Event()
        flushed.set()
        return False

    async def _write_loop(self) -> None:
        try:
            while True:
                await self._write_wanted.wait()
                self._write_wanted = trio.Event()
                data = self._h2.data_to_send()
                self._pending_bytes = 0
                if data or (self._tls is not None and self._tls.output_pending):
                    await self._stream.send_all(data)
                flushed, self._flushed = self._flushed, trio.Event()
                flushed.set()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            self._broken = True
            self.abort()
        except Exception:  # never let one connection take the pools (and gateway) down
            log.exception("%s: writer failed; closing the connection", self._label)
            self._broken = True
            self.abort()

    async def _read_loop(self) -> None:
        while True:
            try:
                data = await self._receive()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                self._broken = True
                return
            if not data:
                return
            for event in self._h2.receive_data(data):
                self._dispatch(event)
            if self._h2.has_output:  # ACKs, WINDOW_UPDATEs, RST_STREAMs, a GOAWAY
                self._kick()
            if self._h2.closed:  # the peer broke the protocol: GOAWAY is queued
                await self._flush_quietly()
                return

    async def _receive(self) -> bytes | memoryview:
        """The next bytes from the upstream; a view of the reusable buffer (valid until the
        next call) when there is one."""
        view = self._view
        if view is not None:
            if self._socket_io is not None:
                return view[: await self._socket_io.recv_into(view)]
            assert self._tls is not None
            return view[: await self._tls.receive_into(view)]
        return bytes(await self._stream.receive_some(self._read_size))

    async def _flush_quietly(self) -> None:
        with trio.move_on_after(1):
            await self._flushed.wait()

    async def read_chunk(self, s: H2Stream, max_bytes: int = 0) -> bytes | None:
        """Next DATA payload (acknowledging its flow-control credit), ``None`` at the end.
        ``max_bytes`` > 0: every payload already received, joined up to that many bytes (the
        credit of all of them acknowledged at once). Raises the stream's
        :class:`UpstreamError` if it failed."""
        while True:
            if s.inbox:
                data, credit = s.inbox.popleft()
                if max_bytes > 0 and s.inbox and len(data) < max_bytes:
                    parts = [data]
                    size = len(data)
                    while s.inbox and size + len(s.inbox[0][0]) <= max_bytes:
                        more, more_credit = s.inbox.popleft()
                        parts.append(more)
                        size += len(more)
                        credit += more_credit
                    data = b"".join(parts)
                if credit and not self.closed:
                    self._h2.acknowledge(s.stream_id, credit)
                    if self._h2.has_output:  # credit goes out in batches
                        self._kick()
                if data:
                    return data
                continue
            if s.error is not None:
                raise s.error
            if s.ended:
                return None
            s.readable = trio.Event()
            await s.readable.wait()

    def expect_headers_by(self, s: H2Stream, deadline: float) -> None:
        """Mark ``s`` ``timed_out`` (and wake its :meth:`wait_headers`) if no response headers
        arrived by ``deadline`` (``trio.current_time()`` clock)."""
        self._deadlines.push(s, deadline, self.active_streams)

    async def wait_headers(self, s: H2Stream) -> None:
        """Wait for response headers; raises the stream's error."""
        await s.wait_answer()
        if s.error is not None and not s.status:
            raise s.error

    def release(self, s: H2Stream) -> None:
        """The consumer is done with ``s``: reset it if unfinished, return unread credit to
        the connection window, free its slot. Idempotent."""
        if s.released:
            return
        s.released = True
        if not (s.ended and s.local_ended) and s.error is None:
            self.reset(s)
        while s.inbox and not self.closed:
            _, credit = s.inbox.popleft()
            self._h2.acknowledge(s.stream_id, credit)
        self._forget(s)
        self._streams.pop(s.stream_id, None)
        self.active_streams -= 1
        self._deadlines.drop_finished()
        if self._on_release is None:
            self._on_change()
        else:
            self._on_release(self)
