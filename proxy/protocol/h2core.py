"""A lean sans-IO HTTP/2 connection (RFC 9113) for both roles of the proxy.

Why not the ``h2`` library here: on the proxy's hot path h2 was ~50 % of a hop's CPU (a
frame object and a flags set per frame, a stream state machine and enum lookups per event,
validation flag tuples per header block). This connection parses frames with ``struct``
straight from the received buffer, keeps streams as small records with int/bool state, and
emits only :mod:`proxy.protocol.events` objects. HPACK is :mod:`proxy.protocol.hpack_fast`
(encoder) and :mod:`proxy.protocol.hpack_decode`.

Contract: feed bytes to :meth:`H2Core.receive_data` (never raises on peer input: a
connection error queues GOAWAY and yields :class:`ConnectionTerminated`; a stream error
queues RST_STREAM and yields :class:`StreamReset`), call the send methods (they raise
:class:`H2StateError` when the stream or connection can no longer send), write
:meth:`data_to_send`. Supported: SETTINGS (all parameters), connection and stream flow
control, PING, GOAWAY both ways (the connection keeps working for streams the GOAWAY spares),
RST_STREAM, HEADERS + CONTINUATION, padding, trailers, CONNECT / extended CONNECT. Ignored:
PRIORITY (RFC 9113 deprecates it), unknown frame types and settings. Refused: server push.
"""

from __future__ import annotations

from collections.abc import Callable

from proxy.errors import ProxyError
from proxy.protocol import h2wire as w
from proxy.protocol.events import (
    ClientEvent,
    ConnectionTerminated,
    EndOfStream,
    Event,
    Headers,
    StreamReset,
    WindowUpdated,
)
from proxy.protocol.h2receive import (
    ConnectionError_,
    LeadMemo,
    ReceiveMixin,
    RequestMemo,
    ResponseMemo,
    Stream,
)
from proxy.protocol.hpack_fast import FastDecoder, FastEncoder

_RESET_MEMORY = 512
_BY_REFERENCE = 16 * 1024  # streams we reset whose late frames are ignored silently


class H2StateError(ProxyError):
    """A send on a stream (or connection) that can no longer send."""


class H2Core(ReceiveMixin):
    """One HTTP/2 connection, server (``client=False``) or client side."""

    def __init__(
        self,
        *,
        client: bool,
        validate: bool = True,
        max_concurrent_streams: int = 100,
        max_header_list_size: int = 64 * 1024,
        initial_window_size: int = w.DEFAULT_WINDOW,
        connection_window_size: int = w.DEFAULT_WINDOW,
        max_frame_size: int = w.DEFAULT_MAX_FRAME,
    ) -> None:
        self.client = client
        self.validate = validate
        self.streams: dict[int, Stream] = {}
        self._in = bytearray()
        self._out = bytearray()
        self._parts: list[bytes | memoryview] = []  # before _out: big DATA payloads by reference
        self._events: list[Event | ClientEvent] = []
        self.encoder = FastEncoder()
        self.decoder = FastDecoder()
        self.decoder.max_header_list_size = max_header_list_size
        self._request_memo: dict[int, RequestMemo] = {}
        self._response_memo: dict[int, ResponseMemo] = {}
        self._lead_memo: dict[int, LeadMemo] = {}  # parsed heads of runs (see h2receive)
        self._block_limit = 4 * max_header_list_size + 65536
        self._local_max_streams = max_concurrent_streams
        self._local_initial = initial_window_size
        # What the peer may send on a new stream; our INITIAL_WINDOW_SIZE counts once it ACKs
        # our SETTINGS (until then it may use the default, so allow the larger of the two).
        self._recv_initial = max(initial_window_size, w.DEFAULT_WINDOW)
        self._max_in_frame = max(max_frame_size, w.DEFAULT_MAX_FRAME)
        self._settings_unacked = 1
        self.remote_max_streams = 1 << 31
        self._send_initial = w.DEFAULT_WINDOW
        self.max_out_frame = w.DEFAULT_MAX_FRAME
        self.remote_settings_received = False
        self.conn_send_window = w.DEFAULT_WINDOW
        self._conn_recv_max = max(connection_window_size, w.DEFAULT_WINDOW)
        self._conn_recv_window = self._conn_recv_max
        self._conn_unacked = 0
        self.highest_inbound = 0
        self._next_id = 1 if client else 2
        self._reset_ids: dict[int, None] = {}
        self._await_preface = not client
        self._await_settings = True
        self._hdr: list[object] | None = None  # [stream id, end_stream, fragments, size]
        self._data_left = 0  # of the DATA frame being received (delivered as it arrives)
        self._data_sid = 0
        self._data_end = False
        self._data_stream: Stream | None = None
        self.closed = False
        self.goaway_received = False
        self._start(max_concurrent_streams, max_header_list_size, max_frame_size)

    def _start(self, max_streams: int, max_list: int, max_frame: int) -> None:
        settings = {
            w.MAX_CONCURRENT_STREAMS: max_streams,
            w.INITIAL_WINDOW_SIZE: self._local_initial,
            w.MAX_FRAME_SIZE: self._max_in_frame,
            w.MAX_HEADER_LIST_SIZE: max_list,
        }
        if self.client:
            settings[w.ENABLE_PUSH] = 0
            self._out += w.PREFACE
        else:
            settings[w.ENABLE_CONNECT_PROTOCOL] = 1
        self._out += w.settings_frame(settings)
        extra = self._conn_recv_max - w.DEFAULT_WINDOW
        if extra > 0:
            self._out += w.window_update(0, extra)

    # -- input -----------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[Event | ClientEvent]:
        """Events for ``data`` (not kept: it may be a view of a reusable buffer)."""
        if self.closed:
            return []
        events: list[Event | ClientEvent] = []
        self._events = events
        buf = self._in
        src: bytes | bytearray | memoryview
        if buf:
            buf += data
            src = buf
        else:
            src = data
        try:
            pos = 0
            if self._await_preface:
                pos = self._preface(src)
                if pos < 0:
                    if src is not buf:
                        self._in = bytearray(src)
                    return events
            pos = self._frames(src, pos)
        except ConnectionError_ as err:
            self._die(err.code, err.reason)
            events.append(ConnectionTerminated(err.code, 0, f"HTTP/2 {err.reason}"))
            self._in = bytearray()
            return events
        if src is buf:
            del buf[:pos]
        elif pos < len(src):
            self._in = bytearray(src[pos:])
        return events

    def _preface(self, src: bytes | bytearray | memoryview) -> int:
        """Bytes of the client preface consumed, or -1 while it is incomplete."""
        got = bytes(src[:24])
        if not w.PREFACE.startswith(got):
            raise ConnectionError_(w.PROTOCOL_ERROR, "invalid connection preface")
        if len(got) < 24:
            return -1
        self._await_preface = False
        return 24

    def _die(self, code: int, reason: str) -> None:
        if not self.closed:
            debug = reason.encode("ascii", "replace")[:200]
            self._out += w.goaway(self.highest_inbound, code, debug)
            self.closed = True

    # -- output ----------------------------------------------------------------------------

    @property
    def has_output(self) -> bool:
        """Frames are queued for :meth:`data_to_send`."""
        return bool(self._out) or bool(self._parts)

    def data_to_send(self) -> bytes:
        out = self._out
        parts = self._parts
        if parts:
            if out:
                parts.append(bytes(out))
                out.clear()
            data = b"".join(parts)
            parts.clear()
            return data
        if not out:
            return b""
        data = bytes(out)
        out.clear()
        return data

    def take_output(self) -> list[bytes | memoryview]:
        """What :meth:`data_to_send` would return, as pieces in order (big DATA payloads by
        reference, not joined): for a transport that writes pieces without joining them."""
        parts = self._parts
        out = self._out
        if out:
            parts.append(bytes(out))
            out.clear()
        self._parts = []
        return parts

    def open_stream(self) -> int:
        """Client role: allocate the next stream id (its HEADERS must be sent next)."""
        sid = self._next_id
        if self.closed or sid > w.MAX_STREAM_ID:
            raise H2StateError("no stream can be opened on this connection")
        self._next_id = sid + 2
        self.streams[sid] = Stream(self._send_initial, self._recv_initial)
        return sid

    def _sendable(self, sid: int) -> Stream:
        s = self.streams.get(sid)
        if s is None or not s.local_open or self.closed:
            raise H2StateError(f"HTTP/2 stream {sid} can no longer send")
        return s

    def send_headers(self, sid: int, headers: Headers, *, end_stream: bool = False) -> None:
        """A header block (a response head, a request head after :meth:`open_stream`, or
        trailers with ``end_stream``); raises :class:`H2StateError`."""
        s = self._sendable(sid)
        if self.client and not s.head_sent:
            s.head_sent = True
            s.head_request = bool(headers) and headers[0] == (b":method", b"HEAD")
        block = self.encoder.encode(headers)
        self._out += w.header_frames(sid, block, end_stream, self.max_out_frame)
        if end_stream:
            self._local_end(s, sid)

    def send_data(
        self, sid: int, data: bytes | memoryview, *, end_stream: bool = False, borrow: bool = False
    ) -> None:
        """At most :meth:`send_window` bytes; raises :class:`H2StateError`. ``borrow``: the
        caller takes the output (:meth:`take_output`) before ``data`` changes, so a big
        mutable payload is queued by reference too."""
        s = self._sendable(sid)
        n = len(data)
        if n > s.send_window or n > self.conn_send_window or n > self.max_out_frame:
            raise H2StateError(f"{n} bytes exceed the send window of HTTP/2 stream {sid}")
        s.send_window -= n
        self.conn_send_window -= n
        out = self._out
        out += w.pack_header(n >> 16, n & 0xFFFF, w.DATA, w.END_STREAM if end_stream else 0, sid)
        if n >= _BY_REFERENCE and (borrow or type(data) is bytes):
            # Immutable (or borrowed): keep a reference, a bulk payload is copied once at most.
            self._parts.append(bytes(out))
            out.clear()
            self._parts.append(data)
        else:
            out += data
        if end_stream:
            self._local_end(s, sid)

    def end_stream(self, sid: int) -> None:
        self.send_data(sid, b"", end_stream=True)

    def _local_end(self, s: Stream, sid: int) -> None:
        s.local_open = False
        if not s.remote_open:
            del self.streams[sid]

    def reset_stream(self, sid: int, error_code: int = w.CANCEL) -> None:
        """RST_STREAM; a no-op on a stream that is already closed."""
        if self.streams.pop(sid, None) is None or self.closed:
            return
        self._out += w.rst_stream(sid, error_code)
        self._remember_reset(sid)

    def _remember_reset(self, sid: int) -> None:
        ids = self._reset_ids
        ids[sid] = None
        if len(ids) > _RESET_MEMORY:
            del ids[next(iter(ids))]

    def can_send(self, sid: int) -> bool:
        s = self.streams.get(sid)
        return s is not None and s.local_open and not self.closed

    def send_window(self, sid: int) -> int:
        """Bytes that may be sent on ``sid`` now (0 if it cannot send)."""
        s = self.streams.get(sid)
        if s is None or not s.local_open:
            return 0
        return min(s.send_window, self.conn_send_window, self.max_out_frame)

    def acknowledge(self, sid: int, flow_length: int) -> None:
        """``flow_length`` received bytes were consumed: give the peer credit back (the
        connection's always; the stream's while the peer may still send on it). Updates go
        out in batches of half a window, like h2's window manager."""
        if flow_length <= 0 or self.closed:
            return
        unacked = self._conn_unacked + flow_length
        if unacked >= self._conn_recv_max >> 1:
            self._out += w.window_update(0, unacked)
            self._conn_recv_window += unacked
            unacked = 0
        self._conn_unacked = unacked
        s = self.streams.get(sid)
        if s is not None and s.remote_open:
            pending = s.unacked + flow_length
            if pending >= self._recv_initial >> 1:
                self._out += w.window_update(sid, pending)
                s.recv_window += pending
                pending = 0
            s.unacked = pending

    def forward_data(self, sid: int, forward: Callable[[memoryview, int], None] | None) -> None:
        """From now on hand ``sid``'s DATA payloads to ``forward(view, flow_length)`` as they
        are parsed, instead of :class:`DataReceived` events (``None``: events again). The
        view is valid only during the call (a tunnel writes it straight to its socket, or
        copies what it cannot write); its credit is the callee's to :meth:`acknowledge`.
        Ignored for a stream that is gone."""
        s = self.streams.get(sid)
        if s is not None:
            s.forward = forward

    def ping(self, payload: bytes) -> None:
        if self.closed:
            raise H2StateError("the HTTP/2 connection is closed")
        self._out += w.frame(w.PING, 0, 0, payload[:8].ljust(8, b"\0"))

    def goaway(self, error_code: int = w.NO_ERROR) -> None:
        """GOAWAY naming the highest stream the peer opened; the connection keeps serving
        (graceful drain: those streams still finish)."""
        if not self.closed:
            self._out += w.goaway(self.highest_inbound, error_code)

    def close(self, error_code: int = w.NO_ERROR) -> None:
        """Final GOAWAY; nothing may be sent afterwards."""
        if not self.closed:
            self._out += w.goaway(self.highest_inbound, error_code)
            self.closed = True

    # -- used by the receive side -----------------------------------------------------------

    def _stream_error(self, sid: int, code: int, reason: str = "") -> None:
        """RST_STREAM(code); the driver hears of it as a reset of that stream."""
        if self.streams.pop(sid, None) is not None:
            self._events.append(StreamReset(sid, code, reason or "stream error"))
        self._out += w.rst_stream(sid, code)
        self._remember_reset(sid)

    def _remote_end(self, s: Stream, sid: int) -> None:
        if s.expect_length >= 0 and s.received != s.expect_length:
            self._stream_error(sid, w.PROTOCOL_ERROR, "body length differs from content-length")
            return
        s.remote_open = False
        self._events.append(EndOfStream(sid))
        if not s.local_open:
            del self.streams[sid]

    def _window_changed(self) -> None:
        self._events.append(WindowUpdated(0))


__all__ = ["H2Core", "H2StateError"]
