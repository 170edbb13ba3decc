"""HTTP/2 server session over our lean codec (:mod:`proxy.protocol.h2core`), sans-IO.

Feed received bytes to :meth:`H2ServerSession.receive_data`, act on the events, call the send
methods, then write :meth:`data_to_send` to the transport. A protocol violation by the peer
queues GOAWAY (PROTOCOL_ERROR or the code the rule names) and yields
:class:`ConnectionTerminated`; other connections are not affected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from proxy.errors import ProxyError
from proxy.protocol import h2wire
from proxy.protocol.events import ConnectionTerminated, Event, Headers
from proxy.protocol.h2core import H2Core, H2StateError

# The ``:status`` fields of the usual codes, built once: the encoder finds a field by its
# hash, which a fresh bytes object computes again on every response (~0.2 µs a response).
_STATUS_FIELDS: dict[int, tuple[bytes, bytes]] = {
    code: (b":status", b"%d" % code)
    for code in (*range(200, 209), *range(300, 309), *range(400, 600))
}


@dataclass(frozen=True, slots=True)
class H2SessionSettings:
    """``validate_headers`` stays on for untrusted clients (outbound listener); the
    authenticated inter-gateway leg may turn it off (RFC 9113 §8.2 checks cost CPU).
    Windows bound what a client may send before we consume it (per stream, per connection).
    """

    validate_headers: bool = True
    max_concurrent_streams: int = 100
    max_header_list_size: int = 64 * 1024
    initial_window_size: int = 1 << 20
    connection_window_size: int = 16 << 20
    max_frame_size: int = 1 << 20


class H2ServerSession:
    """Server side of one HTTP/2 connection. Never does I/O; never raises on peer input."""

    __slots__ = ("_conn", "closed")

    def __init__(self, settings: H2SessionSettings = H2SessionSettings()) -> None:
        self._conn = H2Core(
            client=False,
            validate=settings.validate_headers,
            max_concurrent_streams=settings.max_concurrent_streams,
            max_header_list_size=settings.max_header_list_size,
            initial_window_size=settings.initial_window_size,
            connection_window_size=settings.connection_window_size,
            max_frame_size=settings.max_frame_size,
        )
        self.closed = False

    # -- input -----------------------------------------------------------------------------

    def receive_data(self, data: bytes | memoryview) -> list[Event]:
        """Events for ``data`` (not kept: it may be a view of a reusable buffer); ``b""``
        means the peer closed the transport."""
        if not data:
            self.closed = True
            return [ConnectionTerminated(0, 0, "peer closed the connection")]
        events = self._conn.receive_data(data)
        if self._conn.closed or self._conn.goaway_received:
            self.closed = True
        return events  # type: ignore[return-value]

    def forward_data(
        self, stream_id: int, forward: Callable[[memoryview, int], None] | None
    ) -> None:
        """See :meth:`proxy.protocol.h2core.H2Core.forward_data`."""
        self._conn.forward_data(stream_id, forward)

    def acknowledge_received_data(self, stream_id: int, flow_length: int) -> None:
        """Give the client credit back for bytes consumed downstream (backpressure)."""
        self._conn.acknowledge(stream_id, flow_length)

    # -- output ----------------------------------------------------------------------------

    def send_headers(
        self, stream_id: int, status: int, headers: Headers, *, end_stream: bool = False
    ) -> None:
        """Raises :class:`StreamGone` if the stream or connection can no longer send."""
        field = _STATUS_FIELDS.get(status)
        if field is None:
            field = (b":status", b"%d" % status)
        block = [field, *headers]
        try:
            self._conn.send_headers(stream_id, block, end_stream=end_stream)
        except H2StateError as err:
            raise StreamGone(str(err)) from err

    def send_data(self, stream_id: int, data: bytes | memoryview, *, end_stream: bool) -> None:
        """Send at most :meth:`send_window` bytes (the caller splits and waits for
        :class:`WindowUpdated`). Raises :class:`StreamGone`."""
        try:
            self._conn.send_data(stream_id, data, end_stream=end_stream)
        except H2StateError as err:
            raise StreamGone(str(err)) from err

    def send_trailers(self, stream_id: int, trailers: Headers) -> None:
        try:
            self._conn.send_headers(stream_id, trailers, end_stream=True)
        except H2StateError as err:
            raise StreamGone(str(err)) from err

    def end_stream(self, stream_id: int) -> None:
        try:
            self._conn.end_stream(stream_id)
        except H2StateError as err:
            raise StreamGone(str(err)) from err

    def reset_stream(self, stream_id: int, error_code: int = h2wire.CANCEL) -> None:
        """Reset a stream; a no-op if it is already closed."""
        self._conn.reset_stream(stream_id, error_code)

    def send_window(self, stream_id: int) -> int:
        """Bytes we may send now on ``stream_id`` (bounded by the frame size)."""
        return self._conn.send_window(stream_id)

    def goaway(self) -> None:
        """Graceful drain: GOAWAY(NO_ERROR) naming the highest stream we saw; those streams
        still finish."""
        self._conn.goaway()

    def close(self, error_code: int = h2wire.NO_ERROR) -> None:
        """Final GOAWAY; nothing may be sent afterwards."""
        self._conn.close(error_code)

    @property
    def has_output(self) -> bool:
        """Frames are queued for :meth:`data_to_send`."""
        return self._conn.has_output

    def data_to_send(self) -> bytes:
        return self._conn.data_to_send()


class StreamGone(ProxyError):
    """The stream (or the whole connection) can no longer send: reset, closed, or GOAWAY'd."""
