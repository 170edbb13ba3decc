"""The receive side of :class:`proxy.protocol.h2core.H2Core`: one handler per frame type.

Every rule of RFC 9113 a peer can break maps to a connection error (raise
:class:`ConnectionError_`) or a stream error (``_stream_error``), as §5.4 and §6 assign them.
"""

from __future__ import annotations

from hpack.exceptions import OversizedHeaderListError

from proxy.protocol import h2wire as w
from proxy.protocol.events import (
    ClientEvent,
    ConnectionTerminated,
    DataReceived,
    Event,
    PingAcknowledged,
    RequestReceived,
    ResponseReceived,
    SettingsChanged,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from proxy.protocol.h2headers import (
    MalformedHeaders,
    check_trailers,
    content_length,
    parse_request,
    parse_response,
)
from proxy.protocol.hpack_fast import FastDecoder, FastEncoder

_U32 = w.U32.unpack_from
_NO_BODY_STATUS = (204, 304)


class ConnectionError_(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Stream:
    """One stream's state: windows, which sides are open, body length accounting."""

    __slots__ = (
        "expect_length",
        "head_request",
        "head_sent",
        "headers_in",
        "local_open",
        "received",
        "recv_window",
        "remote_open",
        "send_window",
        "unacked",
    )

    def __init__(self, send_window: int, recv_window: int) -> None:
        self.send_window = send_window
        self.recv_window = recv_window
        self.unacked = 0
        self.remote_open = True
        self.local_open = True
        self.headers_in = False
        self.head_sent = False
        self.head_request = False
        self.expect_length = -1
        self.received = 0


class ReceiveMixin:
    """Frame handlers; the state lives in :class:`proxy.protocol.h2core.H2Core`."""

    client: bool
    validate: bool
    streams: dict[int, Stream]
    closed: bool
    goaway_received: bool
    highest_inbound: int
    remote_max_streams: int
    remote_settings_received: bool
    max_out_frame: int
    conn_send_window: int
    encoder: FastEncoder
    decoder: FastDecoder
    _out: bytearray
    _events: list[Event | ClientEvent]
    _max_in_frame: int
    _block_limit: int
    _hdr: list[object] | None
    _await_settings: bool
    _settings_unacked: int
    _local_initial: int
    _recv_initial: int
    _send_initial: int
    _local_max_streams: int
    _conn_recv_window: int
    _next_id: int
    _reset_ids: dict[int, None]
    _data_left: int
    _data_sid: int
    _data_end: bool
    _data_stream: Stream | None

    def _stream_error(self, sid: int, code: int, reason: str = "") -> None: ...
    def _remote_end(self, s: Stream, sid: int) -> None: ...
    def _window_changed(self) -> None: ...
    def acknowledge(self, sid: int, flow_length: int) -> None: ...

    def _frames(self, src: bytes | bytearray | memoryview, pos: int) -> int:
        """Handle every complete frame in ``src`` from ``pos``; the offset reached. The
        payload of an unpadded DATA frame is delivered as it arrives (a 1 MiB frame is not
        buffered whole: no copies of it, and a tunnel forwards it sooner)."""
        end = len(src)
        limit = self._max_in_frame
        unpack = w.unpack_header
        with memoryview(src) as mv:
            if self._data_left:
                pos = self._data_continue(mv, pos, end)
            while end - pos >= 9:
                hi, lo, ftype, flags, sid = unpack(mv, pos)
                length = (hi << 16) | lo
                if length > limit:
                    raise ConnectionError_(
                        w.FRAME_SIZE_ERROR, f"frame of {length} bytes exceeds {limit}"
                    )
                start = pos + 9
                streamed = ftype == w.DATA and not flags & w.PADDED
                if start + length > end and not streamed:
                    break
                pos = start + length
                sid &= w.MAX_STREAM_ID
                if self._hdr is not None and ftype != w.CONTINUATION:
                    raise ConnectionError_(w.PROTOCOL_ERROR, "frame inside a header block")
                if self._await_settings:
                    if ftype != w.SETTINGS or flags & w.ACK:
                        raise ConnectionError_(w.PROTOCOL_ERROR, "first frame is not SETTINGS")
                    self._await_settings = False
                if streamed:
                    self._data_stream = self._data_start(flags, sid, length)
                    self._data_sid = sid
                    self._data_end = bool(flags & w.END_STREAM)
                    self._data_left = length
                    pos = self._data_continue(mv, start, end)
                elif ftype == w.DATA:
                    self._on_padded_data(mv[start:pos], flags, sid)
                elif ftype == w.HEADERS:
                    self._on_headers(mv[start:pos], flags, sid)
                else:
                    self._on_control(ftype, mv[start:pos], flags, sid)
        return pos

    def _on_control(self, ftype: int, payload: memoryview, flags: int, sid: int) -> None:
        if ftype == w.WINDOW_UPDATE:
            self._on_window_update(payload, sid)
        elif ftype == w.SETTINGS:
            self._on_settings(payload, flags, sid)
        elif ftype == w.RST_STREAM:
            self._on_rst_stream(payload, sid)
        elif ftype == w.CONTINUATION:
            self._on_continuation(payload, flags, sid)
        elif ftype == w.PING:
            self._on_ping(payload, flags, sid)
        elif ftype == w.GOAWAY:
            self._on_goaway(payload, sid)
        elif ftype == w.PRIORITY:
            self._on_priority(payload, sid)
        elif ftype == w.PUSH_PROMISE:
            raise ConnectionError_(w.PROTOCOL_ERROR, "PUSH_PROMISE (push is disabled)")
        # unknown frame types are ignored (§5.5)

    def _is_idle(self, sid: int) -> bool:
        """No frame has opened ``sid`` yet (§5.1)."""
        if (sid & 1) == (1 if self.client else 0):  # initiated by us
            return sid >= self._next_id
        return sid > self.highest_inbound

    @staticmethod
    def _unpad(payload: memoryview, flags: int) -> memoryview:
        if not flags & w.PADDED:
            return payload
        if not payload or payload[0] >= len(payload):
            raise ConnectionError_(w.PROTOCOL_ERROR, "padding exceeds the frame payload")
        return payload[1 : len(payload) - payload[0]]

    # -- DATA ----------------------------------------------------------------------------

    def _data_start(self, flags: int, sid: int, flow: int) -> Stream | None:
        """Checks and window accounting for a DATA frame of ``flow`` bytes; the stream that
        takes its payload, or ``None`` (then the bytes are credited back and dropped)."""
        if sid == 0:
            raise ConnectionError_(w.PROTOCOL_ERROR, "DATA on stream 0")
        if flow > self._conn_recv_window:
            raise ConnectionError_(w.FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        self._conn_recv_window -= flow
        s = self.streams.get(sid)
        if s is None or not s.remote_open or not s.headers_in:
            self.acknowledge(0, flow)  # nobody will consume these bytes
            if s is None and self._is_idle(sid):
                raise ConnectionError_(w.PROTOCOL_ERROR, f"DATA on idle stream {sid}")
            if s is not None or sid not in self._reset_ids:
                code = w.PROTOCOL_ERROR if s is not None and s.remote_open else w.STREAM_CLOSED
                self._stream_error(sid, code)
            return None
        if flow > s.recv_window:
            raise ConnectionError_(w.FLOW_CONTROL_ERROR, f"DATA beyond stream {sid}'s window")
        s.recv_window -= flow
        return s

    def _data_piece(self, s: Stream, sid: int, data: memoryview, flow: int) -> bool:
        """Deliver payload bytes; False if they broke the stream's content-length."""
        if s.expect_length >= 0:
            s.received += len(data)
            if s.received > s.expect_length:
                self._stream_error(sid, w.PROTOCOL_ERROR, "body longer than content-length")
                return False
        self._events.append(DataReceived(sid, bytes(data), flow))
        return True

    def _data_continue(self, mv: memoryview, pos: int, end: int) -> int:
        """The next bytes of the current unpadded DATA frame; the offset after them."""
        n = min(self._data_left, end - pos)
        left = self._data_left - n
        self._data_left = left
        s = self._data_stream
        if s is None:
            return pos + n  # dropped, already credited
        sid = self._data_sid
        if self.streams.get(sid) is not s or (
            n and not self._data_piece(s, sid, mv[pos : pos + n], n)
        ):
            self._data_stream = None  # reset meanwhile: nobody consumes the rest
            self.acknowledge(0, n + left)
        elif not left:
            self._data_stream = None
            if self._data_end:
                self._remote_end(s, sid)
        return pos + n

    def _on_padded_data(self, payload: memoryview, flags: int, sid: int) -> None:
        s = self._data_start(flags, sid, len(payload))
        data = self._unpad(payload, flags)
        if s is None:
            return
        if not self._data_piece(s, sid, data, len(payload)):
            self.acknowledge(0, len(payload))
        elif flags & w.END_STREAM:
            self._remote_end(s, sid)

    # -- header blocks ---------------------------------------------------------------------

    def _on_headers(self, payload: memoryview, flags: int, sid: int) -> None:
        if sid == 0:
            raise ConnectionError_(w.PROTOCOL_ERROR, "HEADERS on stream 0")
        fragment = self._unpad(payload, flags)
        self_dependent = False
        if flags & w.PRIORITY_FLAG:
            if len(fragment) < 5:
                raise ConnectionError_(w.FRAME_SIZE_ERROR, "HEADERS too short for PRIORITY")
            self_dependent = _U32(fragment)[0] & w.MAX_STREAM_ID == sid
            fragment = fragment[5:]
        end_stream = bool(flags & w.END_STREAM)
        if flags & w.END_HEADERS:
            self._on_block(sid, bytes(fragment), end_stream, self_dependent)
        else:
            self._hdr = [sid, end_stream, [bytes(fragment)], len(fragment), self_dependent]

    def _on_continuation(self, payload: memoryview, flags: int, sid: int) -> None:
        hdr = self._hdr
        if hdr is None or hdr[0] != sid:
            raise ConnectionError_(w.PROTOCOL_ERROR, "CONTINUATION without a header block")
        parts = hdr[2]
        assert isinstance(parts, list)
        parts.append(bytes(payload))
        size = int(hdr[3]) + len(payload)  # type: ignore[call-overload]
        if size > self._block_limit:
            raise ConnectionError_(w.ENHANCE_YOUR_CALM, "header block too large")
        hdr[3] = size
        if flags & w.END_HEADERS:
            self._hdr = None
            self._on_block(sid, b"".join(parts), bool(hdr[1]), bool(hdr[4]))

    def _on_block(self, sid: int, block: bytes, end_stream: bool, self_dependent: bool) -> None:
        try:
            headers = self.decoder.decode(block, raw=True)
        except OversizedHeaderListError as err:
            raise ConnectionError_(w.ENHANCE_YOUR_CALM, f"header list too large: {err}") from err
        except Exception as err:
            raise ConnectionError_(w.COMPRESSION_ERROR, f"HPACK decoding failed: {err}") from err
        block_list: list[tuple[bytes, bytes]] = headers  # type: ignore[assignment]
        if self_dependent:
            self._stream_error(sid, w.PROTOCOL_ERROR)  # a stream cannot depend on itself
        elif self.client:
            self._response_block(sid, block_list, end_stream)
        else:
            self._request_block(sid, block_list, end_stream)

    def _request_block(self, sid: int, block: list[tuple[bytes, bytes]], end: bool) -> None:
        s = self.streams.get(sid)
        if s is not None:
            self._trailers(s, sid, block, end)
            return
        if not sid & 1:
            raise ConnectionError_(w.PROTOCOL_ERROR, f"client opened even stream {sid}")
        if sid <= self.highest_inbound:
            if sid in self._reset_ids:
                return
            raise ConnectionError_(w.STREAM_CLOSED, f"HEADERS on closed stream {sid}")
        self.highest_inbound = sid
        if len(self.streams) >= self._local_max_streams:
            self._stream_error(sid, w.REFUSED_STREAM)
            return
        try:
            method, scheme, authority, path, headers = parse_request(block, self.validate)
            length = content_length(headers) if self.validate or not end else -1
        except MalformedHeaders as err:
            self._stream_error(sid, w.PROTOCOL_ERROR, str(err))
            return
        if end and length > 0:
            self._stream_error(sid, w.PROTOCOL_ERROR)
            return
        s = Stream(self._send_initial, self._recv_initial)
        s.headers_in = True
        s.remote_open = not end
        s.expect_length = length
        self.streams[sid] = s
        self._events.append(RequestReceived(sid, method, scheme, authority, path, headers, end))

    def _response_block(self, sid: int, block: list[tuple[bytes, bytes]], end: bool) -> None:
        s = self.streams.get(sid)
        if s is None:
            if not sid & 1:
                raise ConnectionError_(w.PROTOCOL_ERROR, f"server opened stream {sid}")
            if sid >= self._next_id:
                raise ConnectionError_(w.PROTOCOL_ERROR, f"HEADERS on idle stream {sid}")
            if sid not in self._reset_ids:
                self._stream_error(sid, w.STREAM_CLOSED)
            return
        if s.headers_in:
            self._trailers(s, sid, block, end)
            return
        try:
            status, headers = parse_response(block, self.validate)
            length = content_length(headers)
        except MalformedHeaders as err:
            self._stream_error(sid, w.PROTOCOL_ERROR, str(err))
            return
        if status < 200:
            if end:
                self._stream_error(sid, w.PROTOCOL_ERROR)
            return  # an informational head: the final one follows
        s.headers_in = True
        if length >= 0 and not s.head_request and status not in _NO_BODY_STATUS:
            s.expect_length = length
        self._events.append(ResponseReceived(sid, status, headers, end))
        if end:
            self._remote_end(s, sid)

    def _trailers(self, s: Stream, sid: int, block: list[tuple[bytes, bytes]], end: bool) -> None:
        if not s.remote_open:
            self._stream_error(sid, w.STREAM_CLOSED)
            return
        try:
            if not end:
                raise MalformedHeaders("trailers without END_STREAM")
            check_trailers(block, self.validate)
        except MalformedHeaders as err:
            self._stream_error(sid, w.PROTOCOL_ERROR, str(err))
            return
        if self.client:
            self._events.append(TrailersReceived(sid, list(block)))
        self._remote_end(s, sid)

    # -- control frames --------------------------------------------------------------------

    def _on_settings(self, payload: memoryview, flags: int, sid: int) -> None:
        if sid != 0:
            raise ConnectionError_(w.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & w.ACK:
            if payload:
                raise ConnectionError_(w.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            if self._settings_unacked:
                self._settings_unacked -= 1
                self._adjust_recv_windows(self._local_initial - self._recv_initial)
            return
        if len(payload) % 6:
            raise ConnectionError_(w.FRAME_SIZE_ERROR, "SETTINGS length not a multiple of 6")
        for i in range(0, len(payload), 6):
            ident, value = w.SETTING.unpack_from(payload, i)
            self._apply_setting(ident, value)
        self._out += w.frame(w.SETTINGS, w.ACK, 0)
        self.remote_settings_received = True
        self._events.append(SettingsChanged() if self.client else WindowUpdated(0))

    def _apply_setting(self, ident: int, value: int) -> None:
        if ident == w.HEADER_TABLE_SIZE:
            self.encoder.header_table_size = min(value, 1 << 16)
        elif ident == w.ENABLE_PUSH:
            if value > 1 or (self.client and value):
                raise ConnectionError_(w.PROTOCOL_ERROR, f"invalid SETTINGS_ENABLE_PUSH {value}")
        elif ident == w.MAX_CONCURRENT_STREAMS:
            self.remote_max_streams = value
        elif ident == w.INITIAL_WINDOW_SIZE:
            if value > w.MAX_WINDOW:
                raise ConnectionError_(w.FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE")
            delta = value - self._send_initial
            self._send_initial = value
            for s in self.streams.values():
                s.send_window += delta
                if s.send_window > w.MAX_WINDOW:
                    raise ConnectionError_(w.FLOW_CONTROL_ERROR, "a stream window overflowed")
        elif ident == w.MAX_FRAME_SIZE:
            if not w.DEFAULT_MAX_FRAME <= value <= w.MAX_FRAME_LIMIT:
                raise ConnectionError_(w.PROTOCOL_ERROR, f"invalid SETTINGS_MAX_FRAME_SIZE {value}")
            self.max_out_frame = value
        elif ident == w.ENABLE_CONNECT_PROTOCOL and value > 1:
            raise ConnectionError_(w.PROTOCOL_ERROR, "invalid SETTINGS_ENABLE_CONNECT_PROTOCOL")

    def _adjust_recv_windows(self, delta: int) -> None:
        """Our INITIAL_WINDOW_SIZE took effect (the peer ACKed it): §6.9.2 applies the
        change to every open stream."""
        self._recv_initial += delta
        if delta:
            for s in self.streams.values():
                s.recv_window += delta

    def _on_window_update(self, payload: memoryview, sid: int) -> None:
        if len(payload) != 4:
            raise ConnectionError_(w.FRAME_SIZE_ERROR, "WINDOW_UPDATE length is not 4")
        increment = _U32(payload)[0] & w.MAX_WINDOW
        if sid == 0:
            if increment == 0:
                raise ConnectionError_(w.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            window = self.conn_send_window + increment
            if window > w.MAX_WINDOW:
                raise ConnectionError_(w.FLOW_CONTROL_ERROR, "connection window overflowed")
            self.conn_send_window = window
            self._window_changed()
            return
        s = self.streams.get(sid)
        if s is None:
            if self._is_idle(sid):
                raise ConnectionError_(w.PROTOCOL_ERROR, f"WINDOW_UPDATE on idle stream {sid}")
            return
        if increment == 0:
            self._stream_error(sid, w.PROTOCOL_ERROR)
            return
        window = s.send_window + increment
        if window > w.MAX_WINDOW:
            self._stream_error(sid, w.FLOW_CONTROL_ERROR)
            return
        s.send_window = window
        self._events.append(WindowUpdated(sid))

    def _on_rst_stream(self, payload: memoryview, sid: int) -> None:
        if len(payload) != 4:
            raise ConnectionError_(w.FRAME_SIZE_ERROR, "RST_STREAM length is not 4")
        if sid == 0:
            raise ConnectionError_(w.PROTOCOL_ERROR, "RST_STREAM on stream 0")
        if self.streams.pop(sid, None) is None:
            if self._is_idle(sid):
                raise ConnectionError_(w.PROTOCOL_ERROR, f"RST_STREAM on idle stream {sid}")
            return
        self._events.append(StreamReset(sid, _U32(payload)[0]))

    def _on_ping(self, payload: memoryview, flags: int, sid: int) -> None:
        if sid != 0:
            raise ConnectionError_(w.PROTOCOL_ERROR, "PING on a stream")
        if len(payload) != 8:
            raise ConnectionError_(w.FRAME_SIZE_ERROR, "PING length is not 8")
        if flags & w.ACK:
            if self.client:
                self._events.append(PingAcknowledged())
        else:
            self._out += w.frame(w.PING, w.ACK, 0, bytes(payload))

    def _on_goaway(self, payload: memoryview, sid: int) -> None:
        if sid != 0:
            raise ConnectionError_(w.PROTOCOL_ERROR, "GOAWAY on a stream")
        if len(payload) < 8:
            raise ConnectionError_(w.FRAME_SIZE_ERROR, "GOAWAY shorter than 8 bytes")
        last, code = w.GOAWAY_HEAD.unpack_from(payload)
        self.goaway_received = True
        reason = f"peer sent GOAWAY ({w.error_name(code)})"
        self._events.append(ConnectionTerminated(code, last & w.MAX_STREAM_ID, reason))

    def _on_priority(self, payload: memoryview, sid: int) -> None:
        if sid == 0:
            raise ConnectionError_(w.PROTOCOL_ERROR, "PRIORITY on stream 0")
        if len(payload) != 5:
            self._stream_error(sid, w.FRAME_SIZE_ERROR)
        elif _U32(payload)[0] & w.MAX_STREAM_ID == sid:
            self._stream_error(sid, w.PROTOCOL_ERROR)
