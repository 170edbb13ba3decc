"""Streams out, for :class:`proxy.upstream.h2conn.H2ClientConnection`: opening a stream,
pumping a request body within the flow-control windows, ending and resetting a stream.

DATA is written from the sending task itself when the TLS stream is free (no switch to the
writer task, no copy of the payload into the frame buffer); otherwise it is queued for the
end-of-batch write (:mod:`proxy.batchend`) or the writer task.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio

from proxy.errors import ResetBeforeHeaders, UpstreamError, UpstreamStreamBroken
from proxy.protocol import h2wire
from proxy.protocol.h2core import H2StateError
from proxy.tls.stream import TLSStream
from proxy.upstream.h2inbound import InboundMixin
from proxy.upstream.h2stream import H2Stream
from proxy.upstream.models import UpstreamRequest

_SEND_HIGH_WATER = 256 * 1024


class RequestSendMixin(InboundMixin):
    """Request heads and bodies; the state lives in
    :class:`proxy.upstream.h2conn.H2ClientConnection`."""

    _nursery: trio.Nursery | None
    _tls: TLSStream | None
    _pending_bytes: int
    _flushed: trio.Event
    _write_wanted: trio.Event
    _broken: bool
    active_streams: int
    closed: bool

    def _kick(self) -> None: ...
    def abort(self) -> None: ...

    def start_request(self, req: UpstreamRequest, *, connect: bool = False) -> H2Stream:
        """Open a stream and queue its HEADERS (synchronous, so the pool's capacity decision
        and the stream allocation cannot interleave). A request body is pumped by a task in
        this connection's nursery. ``connect``: an RFC 9113 §8.5 CONNECT (``:authority`` only).
        """
        assert self._nursery is not None and not (self.closed or self.draining)
        stream_id = self._h2.open_stream()
        if connect:
            headers = [(b":method", b"CONNECT"), (b":authority", req.authority)]
        else:
            headers = [
                (b":method", req.method),
                (b":scheme", req.scheme),
                (b":authority", req.authority),
                (b":path", req.path),
            ]
        headers.extend(req.headers)
        end = req.body is None and not connect
        self._h2.send_headers(stream_id, headers, end_stream=end)
        s = H2Stream(stream_id)
        s.local_ended = end
        self._streams[stream_id] = s
        self.active_streams += 1
        self._kick()
        if req.body is not None:
            self._nursery.start_soon(self._pump_body, s, req.body)
        return s

    async def _pump_body(self, s: H2Stream, body: AsyncIterator[bytes]) -> None:
        with trio.CancelScope() as scope:
            s.pump_scope = scope
            try:
                async for chunk in body:
                    await self.send_data(s, chunk)
                self.end_stream(s)
            except UpstreamError:
                pass  # the stream already failed; its consumer sees why
            except Exception as err:  # the body's source broke: only this stream suffers
                self.reset(s)
                self._fail(s, f"the request body failed ({err!r})")

    async def send_data(self, s: H2Stream, data: bytes | memoryview) -> None:
        """Send within the flow-control windows; blocks while they are closed and while the
        writer is behind. ``data`` is serialized into the outgoing buffer before any wait, so
        the caller may reuse its buffer once this returns. Raises the stream's error once it
        failed."""
        pos, size = 0, len(data)
        while pos < size:
            if s.error is not None or self.closed or s.released:
                raise s.error or ResetBeforeHeaders(f"{self._label}: stream closed")
            window = self._h2.send_window(s.stream_id)
            if window <= 0:
                if not self._h2.can_send(s.stream_id):
                    msg = f"{self._label}: stream {s.stream_id} closed while sending"
                    raise UpstreamStreamBroken(msg, endpoint=self._key)
                s.window = trio.Event()
                await s.window.wait()
                continue
            n = min(window, size - pos)
            chunk = data[pos : pos + n] if n < size else data
            tls = self._tls
            now = tls is not None and tls.send_ready
            try:
                self._h2.send_data(s.stream_id, chunk, borrow=now)
            except H2StateError as err:
                msg = f"{self._label}: stream {s.stream_id} closed while sending"
                raise UpstreamStreamBroken(msg, endpoint=self._key) from err
            pos += n
            if now:
                assert tls is not None
                self._write_now(tls)
            else:
                self._pending_bytes += n
                self._kick()
        while self._pending_bytes > _SEND_HIGH_WATER and not self.closed:
            await self._flushed.wait()

    def _write_now(self, tls: TLSStream) -> bool:
        """Write all queued output from the calling task (``tls.send_ready`` was checked with
        no await since); what the kernel did not take is left to the writer task (True)."""
        try:
            left = tls.send_nowait(self._h2.take_output())
        except trio.BrokenResourceError as err:
            self._broken = True
            self.abort()
            raise UpstreamStreamBroken(f"{self._label}: {err}", endpoint=self._key) from err
        if left is None:  # cannot happen after send_ready: fail loudly rather than reorder
            raise RuntimeError("TLS stream refused a write it declared ready for")
        if left:
            self._pending_bytes = left
            self._write_wanted.set()  # the writer task waits for the kernel
            return True
        return False

    def end_stream(self, s: H2Stream) -> None:
        if not (s.local_ended or s.released or self.closed or s.error):
            s.local_ended = True
            try:
                self._h2.end_stream(s.stream_id)
            except H2StateError:
                return
            self._kick()

    def reset(self, s: H2Stream) -> None:
        if not self.closed and not (s.ended and s.local_ended):
            self._h2.reset_stream(s.stream_id, h2wire.CANCEL)
            self._kick()
