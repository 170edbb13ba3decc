"""The HTTP/2 connection driver: one reader loop feeding an :class:`H2ServerSession`, one
task per active stream running the engine, a shared coalescing writer.

Flow control is end to end: a stream's received bytes are acknowledged (WINDOW_UPDATE) only
when the engine pulls them from ``exchange.body``; a response is sent only as fast as the
client's windows open. The caller owns (and closes) the transport stream.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import trio

from proxy.listeners.exchange import Downstream, DownstreamGone, RequestHandler
from proxy.listeners.h2exchange import H2Exchange
from proxy.listeners.h2workers import Deadline, StreamWorkers
from proxy.listeners.limits import DrainSignal, ListenerLimits
from proxy.listeners.writer import BULK_THRESHOLD, DeferredWriter
from proxy.protocol import h2wire
from proxy.protocol.events import (
    ConnectionTerminated,
    DataReceived,
    EndOfStream,
    Event,
    RequestReceived,
    StreamReset,
    WindowUpdated,
)
from proxy.protocol.h2session import H2ServerSession, H2SessionSettings
from proxy.tls.sockio import SocketIO
from proxy.tls.stream import TLSStream

# A TLS stream copies out only what it decrypted, so a big read limit costs no allocation and
# lets bulk DATA (a tunnel) arrive in a quarter of the loop turns.
TLS_READ_SIZE = 256 * 1024

log = logging.getLogger(__name__)


class H2Connection:
    """Serve HTTP/2 on ``stream`` until the client closes, sends GOAWAY, breaks the protocol
    (GOAWAY(PROTOCOL_ERROR) is sent), idles out, or a drain completes."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        handler: RequestHandler,
        downstream: Downstream,
        limits: ListenerLimits,
        drain: DrainSignal,
        *,
        validate_headers: bool = True,
        initial: bytes = b"",
    ) -> None:
        self.stream = stream
        self.handler = handler
        self.downstream = downstream
        self.limits = limits
        self.drain = drain
        self.session = H2ServerSession(
            H2SessionSettings(
                validate_headers=validate_headers,
                max_concurrent_streams=limits.max_concurrent_streams,
                max_header_list_size=limits.max_header_list_size,
                initial_window_size=limits.stream_window,
                connection_window_size=limits.connection_window,
            )
        )
        self.streams: dict[int, H2Exchange] = {}
        self._initial = initial
        self._read_size = limits.read_size
        self._view: memoryview | None = None  # reusable receive buffer
        self._socket_io: SocketIO | None = None
        if isinstance(stream, TLSStream):
            self._read_size = max(limits.read_size, TLS_READ_SIZE)
            self._view = memoryview(bytearray(self._read_size))
        elif isinstance(stream, trio.SocketStream):
            self._socket_io = SocketIO(stream.socket)
            if self._socket_io.raw is not None:
                self._view = memoryview(bytearray(self._read_size))
        self.writer = DeferredWriter(stream, self._pull_output, downstream.remote)
        self.unflushed = 0
        self._window = trio.Event()
        self._idle = trio.Event()
        self._broken = False
        self._served = False
        self._read_scope: trio.CancelScope | None = None
        self._idle_mark: Deadline | None = None
        self._workers: StreamWorkers[H2Exchange] | None = None

    @property
    def broken(self) -> bool:
        return self._broken or self.writer.broken

    def _pull_output(self) -> bytes:
        self.unflushed = 0
        return self.session.data_to_send()

    async def serve(self) -> None:
        async with trio.open_nursery() as nursery:
            self.writer.scope = nursery.cancel_scope
            self._workers = StreamWorkers(nursery, self._run_stream, self._stream_cancelled)
            nursery.start_soon(self.writer.run)
            nursery.start_soon(self._watch_drain, nursery.cancel_scope)
            try:
                await self._read_loop()
                await self.writer.final_flush()
            finally:
                # Peer GOAWAY or clean EOF: in-flight streams may still finish (bounded by
                # their request timeout); a broken transport cancels them.
                if self.broken or not self.streams:
                    nursery.cancel_scope.cancel()
                else:
                    nursery.start_soon(self._cancel_when_idle, nursery.cancel_scope)

    async def _read_loop(self) -> None:
        """Read and dispatch until the connection ends. One cancel scope for the whole loop
        carries the header-read / idle deadline (re-armed before each read while no stream
        is active, infinite while one is)."""
        self.writer.schedule()
        data: bytes | memoryview = self._initial
        with trio.CancelScope() as scope:
            self._read_scope = scope
            try:
                while True:
                    if data:
                        if not await self._dispatch(self.session.receive_data(data)):
                            return
                        if self.session.has_output:
                            self.writer.schedule()
                    self._arm_idle_deadline()
                    try:
                        data = await self._receive()
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        self._broken = True
                        return
                    if not data:
                        self._broken = True
                        return
            finally:
                self._read_scope = None
        if scope.cancelled_caught:
            self.session.close()
            await self.flush()

    async def _receive(self) -> bytes | memoryview:
        """The next bytes from the client, into our reusable buffer (valid until the next
        call: the session copies what it keeps): decrypted straight into it from a TLS
        stream; on plaintext TCP read with :class:`SocketIO` (trio's ``receive_some`` adds a
        context manager, a copy, and a full schedule point after every read that did not
        wait, i.e. a second pass through the scheduler per burst of requests)."""
        view = self._view
        if view is not None:
            if self._socket_io is not None:
                return view[: await self._socket_io.recv_into(view)]
            assert isinstance(self.stream, TLSStream)
            return view[: await self.stream.receive_into(view)]
        return bytes(await self.stream.receive_some(self._read_size))

    def _arm_idle_deadline(self) -> None:
        """No deadline while streams are active; else header-read (before the first request)
        or idle timeout from now, as a mark in the workers' deadline heap that cancels the
        read scope when it passes (moving the scope's own deadline to infinity and back on
        every burst of requests cost ~3.6 µs per burst)."""
        mark = self._idle_mark
        if mark is not None:
            mark.finished = True
            self._idle_mark = None
        scope = self._read_scope
        if scope is None or self.streams or self._workers is None:
            return
        timeout = self.limits.idle_timeout_s if self._served else self.limits.header_read_timeout_s
        self._idle_mark = Deadline(scope)
        self._workers.cancel_at(self._idle_mark, trio.current_time() + timeout)

    async def _dispatch(self, events: Sequence[Event]) -> bool:
        now = 0.0  # the clock, read once for the requests of one read (0.35 µs a read)
        for ev in events:
            if isinstance(ev, RequestReceived):
                if not now:
                    now = trio.current_time()
                self._start_stream(ev, now)
            elif isinstance(ev, DataReceived):
                ex = self.streams.get(ev.stream_id)
                if ex is None:
                    self.session.acknowledge_received_data(ev.stream_id, ev.flow_length)
                else:
                    ex.on_data(ev.data, ev.flow_length)
            elif isinstance(ev, EndOfStream):
                ex = self.streams.get(ev.stream_id)
                if ex is not None:
                    ex.on_end()
            elif isinstance(ev, WindowUpdated):
                self._window.set()
                self._window = trio.Event()
            elif isinstance(ev, StreamReset):
                ex = self.streams.get(ev.stream_id)
                if ex is not None:
                    ex.on_reset()
            elif isinstance(ev, ConnectionTerminated):
                await self.flush()
                self._broken = ev.error_code != 0 or ev.last_stream_id == 0
                return False
        return True

    def _start_stream(self, head: RequestReceived, now: float) -> None:
        if self.drain.requested:
            self.session.reset_stream(head.stream_id, h2wire.REFUSED_STREAM)
            return
        ex = H2Exchange(self, head)
        self.streams[head.stream_id] = ex
        self._served = True
        if self._idle_mark is not None:  # the burst's first stream: no idle timeout now
            self._arm_idle_deadline()
        if self._idle.is_set():
            self._idle = trio.Event()
        assert self._workers is not None
        tunnel = ex.method == b"CONNECT"
        self._workers.submit(ex, math.inf if tunnel else self.limits.request_timeout_s, now)

    async def _run_stream(self, ex: H2Exchange) -> None:
        """One exchange on a worker task, inside the worker's scope (``ex.scope``), which
        the client's reset or the workers' timer at the request deadline cancel (then
        :meth:`_stream_cancelled` answers)."""
        scope = ex.scope
        assert scope is not None
        if ex.timed_out or ex.reset_by_peer:
            scope.cancel()
        ours = False
        try:
            try:
                await self.handler.handle(ex)
            finally:
                ex.scope = None  # from here on a reset must not cancel the worker's scope
            if not ex.ended:
                await ex.abort()
        except trio.Cancelled:
            ours = scope.cancel_called  # then _stream_cancelled answers and cleans up
            raise
        except DownstreamGone:
            pass
        except Exception:
            # A bug in one exchange resets that stream only.
            log.exception("stream %d from %s failed", ex.stream_id, self.downstream.remote)
            await ex.abort()
        finally:
            if not ours:
                self._stream_done(ex)

    async def _stream_cancelled(self, ex: H2Exchange) -> None:
        """The exchange's scope was cancelled: 504 by the deadline (a reset once the
        response started); nothing when the client reset it."""
        try:
            if not ex.reset_by_peer:
                if ex.response_started:
                    await ex.abort()
                else:
                    await ex.respond_simple(504, b"request timeout")
        except DownstreamGone:
            pass
        except Exception:
            log.exception("stream %d from %s failed", ex.stream_id, self.downstream.remote)
            await ex.abort()
        finally:
            self._stream_done(ex)

    def _stream_done(self, ex: H2Exchange) -> None:
        ex.release()
        del self.streams[ex.stream_id]
        if not self.streams:
            self._idle.set()
            self._arm_idle_deadline()

    async def _watch_drain(self, scope: trio.CancelScope) -> None:
        await self.drain.wait()
        self.session.goaway()
        try:
            await self.flush()
        except DownstreamGone:
            scope.cancel()
            return
        await self._cancel_when_idle(scope)

    async def _cancel_when_idle(self, scope: trio.CancelScope) -> None:
        while self.streams:
            await self._idle.wait()
        await self.writer.final_flush()
        scope.cancel()

    async def wait_window(self) -> None:
        await self._window.wait()

    async def flush(self) -> None:
        """Write whatever the session queued now (raises :class:`DownstreamGone`)."""
        await self.writer.flush()

    async def queued(self, size: int = 0) -> None:
        """Output was queued: write it soon, or now once a bulk amount is pending (so a
        fast producer waits for the client: backpressure)."""
        self.unflushed += size
        if self.unflushed >= BULK_THRESHOLD:
            await self.writer.flush()
        else:
            self.writer.schedule()
