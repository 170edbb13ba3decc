"""HTTP/2 server session over ``h2`` translated into :mod:`proxy.protocol.events` (sans-IO).

Feed received bytes to :meth:`H2ServerSession.receive_data`, act on the events, call the send
methods, then write :meth:`data_to_send` to the transport. A protocol violation by the peer
queues GOAWAY(PROTOCOL_ERROR or the code h2 chose) and yields :class:`ConnectionTerminated`;
other connections are not affected.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import GoAwayFrame

from proxy.errors import ProxyError
from proxy.protocol.events import (
    ConnectionTerminated,
    DataReceived,
    EndOfStream,
    Event,
    Headers,
    RequestReceived,
    StreamReset,
    WindowUpdated,
)
from proxy.protocol.h2fast import FastH2Connection, install

_PSEUDO = b":"
_H2_SEND_ERRORS = (h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError, KeyError)


@dataclass(frozen=True, slots=True)
class H2SessionSettings:
    """``validate_headers`` stays on for untrusted clients (outbound listener); the
    authenticated inter-gateway leg may turn it off (hpack validation is a known hot spot).
    Windows bound what a client may send before we consume it (per stream, per connection).
    """

    validate_headers: bool = True
    max_concurrent_streams: int = 100
    max_header_list_size: int = 64 * 1024
    initial_window_size: int = 1 << 20
    connection_window_size: int = 16 << 20
    max_frame_size: int = 1 << 20


install()


class H2ServerSession:
    """Server side of one HTTP/2 connection. Never does I/O; never raises on peer input."""

    __slots__ = ("_conn", "_goaway", "closed")

    def __init__(self, settings: H2SessionSettings = H2SessionSettings()) -> None:
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_inbound_headers=settings.validate_headers,
            normalize_inbound_headers=settings.validate_headers,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self._conn = FastH2Connection(config=config)
        self._conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: settings.max_concurrent_streams,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: settings.max_header_list_size,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: settings.initial_window_size,
                h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 1,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: settings.max_frame_size,
            },
        )
        self._conn.initiate_connection()
        extra = settings.connection_window_size - 65535
        if extra > 0:
            self._conn.increment_flow_control_window(extra)
        # Enforce the header limit from the first frame, before the client ACKs our SETTINGS;
        # h2 takes initial SETTINGS values as already acknowledged, so it would never raise
        # its frame size limit from 16 KiB to the one we advertise: set it here.
        self._conn.decoder.max_header_list_size = settings.max_header_list_size
        self._conn.max_inbound_frame_size = settings.max_frame_size
        self.closed = False
        self._goaway = b""

    # -- input -----------------------------------------------------------------------------

    def receive_data(self, data: bytes | memoryview) -> list[Event]:
        """Events for ``data`` (not kept: it may be a view of a reusable buffer); ``b""``
        means the peer closed the transport."""
        if not data:
            self.closed = True
            return [ConnectionTerminated(0, 0, "peer closed the connection")]
        try:
            raw = self._conn.receive_data(data)
        except h2.exceptions.ProtocolError as err:
            self.closed = True
            code = int(getattr(err, "error_code", h2.errors.ErrorCodes.PROTOCOL_ERROR))
            return [ConnectionTerminated(code, 0, f"HTTP/2 protocol error: {err}")]
        if self._oversized_frame_pending():
            self.closed = True
            self.close(h2.errors.ErrorCodes.FRAME_SIZE_ERROR)
            return [
                ConnectionTerminated(h2.errors.ErrorCodes.FRAME_SIZE_ERROR, 0, "frame too large")
            ]
        events: list[Event] = []
        for ev in raw:
            translated = _translate(ev)
            if translated is not None:
                events.append(translated)
                if isinstance(translated, ConnectionTerminated):
                    self.closed = True
        return events

    def _oversized_frame_pending(self) -> bool:
        """h2 buffers a frame whole before checking its declared length against our
        SETTINGS_MAX_FRAME_SIZE, so a peer declaring 16 MiB could make us hold 16 MiB. What is
        left unparsed after a receive is at most one incomplete frame: its header declaring
        more than we allow (or more buffered than a maximal frame) means it is illegal."""
        pending = getattr(self._conn.incoming_buffer, "_data", b"")
        limit = self._conn.max_inbound_frame_size
        if len(pending) >= 3 and int.from_bytes(pending[:3], "big") > limit:
            return True
        return len(pending) > limit + 9

    def acknowledge_received_data(self, stream_id: int, flow_length: int) -> None:
        """Give the client credit back for bytes consumed downstream (backpressure)."""
        if flow_length <= 0:
            return
        try:
            self._conn.acknowledge_received_data(flow_length, stream_id)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            # The stream is gone; its bytes still count for the connection window.
            self._conn.increment_flow_control_window(flow_length)

    # -- output ----------------------------------------------------------------------------

    def send_headers(
        self, stream_id: int, status: int, headers: Headers, *, end_stream: bool = False
    ) -> None:
        """Raises :class:`StreamGone` if the stream or connection can no longer send."""
        block = [(b":status", str(status).encode()), *headers]
        try:
            self._conn.send_headers(stream_id, block, end_stream=end_stream)
        except _H2_SEND_ERRORS as err:
            raise StreamGone(f"HTTP/2 stream {stream_id} can no longer send: {err}") from err

    def send_data(self, stream_id: int, data: bytes | memoryview, *, end_stream: bool) -> None:
        """Send at most :meth:`send_window` bytes (the caller splits and waits for
        :class:`WindowUpdated`). Raises :class:`StreamGone`."""
        try:
            self._conn.send_data(stream_id, data, end_stream=end_stream)
        except _H2_SEND_ERRORS as err:
            raise StreamGone(f"HTTP/2 stream {stream_id} can no longer send: {err}") from err

    def send_trailers(self, stream_id: int, trailers: Headers) -> None:
        try:
            self._conn.send_headers(stream_id, trailers, end_stream=True)
        except _H2_SEND_ERRORS as err:
            raise StreamGone(f"HTTP/2 stream {stream_id} can no longer send: {err}") from err

    def end_stream(self, stream_id: int) -> None:
        try:
            self._conn.end_stream(stream_id)
        except _H2_SEND_ERRORS as err:
            raise StreamGone(f"HTTP/2 stream {stream_id} can no longer send: {err}") from err

    def reset_stream(self, stream_id: int, error_code: int = h2.errors.ErrorCodes.CANCEL) -> None:
        """Reset a stream; a no-op if it is already closed."""
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self._conn.reset_stream(stream_id, error_code)

    def send_window(self, stream_id: int) -> int:
        """Bytes we may send now on ``stream_id`` (bounded by the frame size)."""
        try:
            window = self._conn.local_flow_control_window(stream_id)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            return 0
        return min(window, self._conn.max_outbound_frame_size)

    def stream_open(self, stream_id: int) -> bool:
        stream = self._conn.streams.get(stream_id)
        return stream is not None and not stream.closed

    def goaway(self) -> None:
        """Graceful drain: GOAWAY(NO_ERROR) naming the highest stream we saw; those streams
        still finish (h2's own ``close_connection`` would forbid sending on them, so the
        frame is written here and the connection state is left open)."""
        frame = GoAwayFrame(0, last_stream_id=self._conn.highest_inbound_stream_id, error_code=0)
        self._goaway = frame.serialize()

    def close(self, error_code: int = h2.errors.ErrorCodes.NO_ERROR) -> None:
        """Final GOAWAY; nothing may be sent afterwards."""
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self._conn.close_connection(
                error_code=error_code, last_stream_id=self._conn.highest_inbound_stream_id
            )

    def data_to_send(self) -> bytes:
        data = self._conn.data_to_send()
        if self._goaway:
            data, self._goaway = data + self._goaway, b""
        return data


class StreamGone(ProxyError):
    """The stream (or the whole connection) can no longer send: reset, closed, or GOAWAY'd."""


def _request(ev: h2.events.RequestReceived) -> RequestReceived:
    method = scheme = authority = path = b""
    headers: Headers = []
    for name, value in ev.headers or ():
        if name[:1] == _PSEUDO:
            if name == b":method":
                method = value
            elif name == b":scheme":
                scheme = value
            elif name == b":authority":
                authority = value
            elif name == b":path":
                path = value
        else:
            headers.append((name, value))
    if not authority:
        authority = next((v for n, v in headers if n == b"host"), b"")
    if method == b"CONNECT" and not path:
        path = authority
    ended = ev.stream_ended is not None
    return RequestReceived(ev.stream_id or 0, method, scheme, authority, path, headers, ended)


def _translate(ev: h2.events.Event) -> Event | None:  # noqa: PLR0911 - one branch per event
    if isinstance(ev, h2.events.RequestReceived):
        return _request(ev)
    if isinstance(ev, h2.events.DataReceived):
        return DataReceived(ev.stream_id or 0, ev.data or b"", ev.flow_controlled_length or 0)
    if isinstance(ev, h2.events.StreamEnded):
        return EndOfStream(ev.stream_id or 0)
    if isinstance(ev, h2.events.StreamReset):
        return StreamReset(ev.stream_id or 0, int(ev.error_code or 0))
    if isinstance(ev, h2.events.WindowUpdated):
        return WindowUpdated(ev.stream_id or 0)
    if isinstance(ev, h2.events.RemoteSettingsChanged):
        return WindowUpdated(0)
    if isinstance(ev, h2.events.ConnectionTerminated):
        return ConnectionTerminated(
            int(ev.error_code or 0), ev.last_stream_id or 0, "peer sent GOAWAY"
        )
    return None
