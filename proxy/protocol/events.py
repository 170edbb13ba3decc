"""One small event vocabulary for HTTP/1.1 and HTTP/2 server sessions.

HTTP/1.1 requests always use ``stream_id`` 1; HTTP/2 uses the stream id. Header names are
lowercase bytes; pseudo headers are lifted into fields and never appear in ``headers``.
"""

from __future__ import annotations

from dataclasses import dataclass

Headers = list[tuple[bytes, bytes]]


@dataclass(slots=True)
class RequestReceived:
    """Request head. ``authority`` is ``:authority``, else ``Host``, else the host of an
    absolute-form target. ``path`` is origin-form (``/...``), or ``host:port`` for CONNECT."""

    stream_id: int
    method: bytes
    scheme: bytes
    authority: bytes
    path: bytes
    headers: Headers
    end_stream: bool


@dataclass(slots=True)
class DataReceived:
    """Body bytes. ``flow_length`` (HTTP/2 incl. padding) must be acknowledged through
    ``acknowledge_received_data`` once the bytes are consumed downstream."""

    stream_id: int
    data: bytes
    flow_length: int


@dataclass(slots=True)
class EndOfStream:
    """The peer finished sending on this stream (request body complete)."""

    stream_id: int


@dataclass(slots=True)
class StreamReset:
    """The peer reset this stream, or we did because it broke a rule (then ``reason`` says
    which, and RST_STREAM is already queued); ``error_code`` is HTTP/2's."""

    stream_id: int
    error_code: int
    reason: str = ""


@dataclass(slots=True)
class WindowUpdated:
    """More send window on ``stream_id`` (``0``: the whole connection)."""

    stream_id: int


@dataclass(slots=True)
class ConnectionTerminated:
    """The connection is over: the peer sent GOAWAY / closed, or broke the protocol (then
    ``status_hint`` says what an HTTP/1.1 peer should be told, e.g. 400 or 431, and any
    bytes to send are already queued: GOAWAY(PROTOCOL_ERROR) for HTTP/2)."""

    error_code: int
    last_stream_id: int
    reason: str = ""
    status_hint: int | None = None


Event = (
    RequestReceived
    | DataReceived
    | EndOfStream
    | StreamReset
    | WindowUpdated
    | ConnectionTerminated
)


@dataclass(slots=True)
class ResponseReceived:
    """A final response head on a client stream (1xx heads are skipped)."""

    stream_id: int
    status: int
    headers: Headers
    end_stream: bool


@dataclass(slots=True)
class TrailersReceived:
    """Trailers on a client stream (the stream's end follows as :class:`EndOfStream`)."""

    stream_id: int
    headers: Headers


@dataclass(slots=True)
class PingAcknowledged:
    """The peer answered our PING."""


@dataclass(slots=True)
class SettingsChanged:
    """The peer's SETTINGS were applied (client connections: capacity may have changed)."""


ClientEvent = (
    ResponseReceived
    | TrailersReceived
    | DataReceived
    | EndOfStream
    | StreamReset
    | WindowUpdated
    | PingAcknowledged
    | SettingsChanged
    | ConnectionTerminated
)
