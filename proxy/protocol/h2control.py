"""Control frames of :class:`proxy.protocol.h2core.H2Core` (SETTINGS, WINDOW_UPDATE,
RST_STREAM, PING, GOAWAY, PRIORITY) and the state shared by the receive side.

Each rule of RFC 9113 §6 a peer can break raises :class:`ConnectionError_` (a connection
error) or calls ``_stream_error`` (a stream error), as the RFC assigns them.
"""

from __future__ import annotations

from collections.abc import Callable

from proxy.protocol import h2wire as w
from proxy.protocol.events import (
    ClientEvent,
    ConnectionTerminated,
    Event,
    PingAcknowledged,
    SettingsChanged,
    StreamReset,
    WindowUpdated,
)
from proxy.protocol.hpack_fast import FastDecoder, FastEncoder

_U32 = w.U32.unpack_from


class ConnectionError_(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Stream:
    """One stream's state: windows, which sides are open, body length accounting."""

    __slots__ = (
        "expect_length",
        "forward",
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
        # Takes DATA payload views (valid only during the call) and their flow-control
        # length instead of DataReceived events; see H2Core.forward_data.
        self.forward: Callable[[memoryview, int], None] | None = None


class ControlMixin:
    """Control-frame handlers; the state lives in :class:`proxy.protocol.h2core.H2Core`."""

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
    def _on_continuation(self, payload: memoryview, flags: int, sid: int) -> None: ...

    def _is_idle(self, sid: int) -> bool:
        """No frame has opened ``sid`` yet (§5.1)."""
        if (sid & 1) == (1 if self.client else 0):  # initiated by us
            return sid >= self._next_id
        return sid > self.highest_inbound

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
