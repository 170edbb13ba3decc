"""HTTP/1.1 server session over ``h11`` translated into :mod:`proxy.protocol.events`.

One request at a time, always ``stream_id`` 1. A malformed or oversized request head yields
:class:`ConnectionTerminated` with ``status_hint`` (400, 431...): the driver answers it with
:meth:`H1ServerSession.reject` and closes. Absolute-form targets (``GET http://host/path``) are
split into authority and origin-form path, as a forward proxy must.
"""

from __future__ import annotations

from http import HTTPStatus

import h11

from proxy.protocol.events import (
    ConnectionTerminated,
    DataReceived,
    EndOfStream,
    Event,
    Headers,
    RequestReceived,
)

STREAM_ID = 1
# Some clients (h2load --h1, old http-parser) reject an empty reason phrase.
_REASONS = {int(s): s.phrase.encode("ascii") for s in HTTPStatus}
_PHRASES = {
    400: b"Bad Request",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


class H1ServerSession:
    """Server side of one HTTP/1.1 connection. Never does I/O; never raises on peer input."""

    __slots__ = ("_conn", "_out", "upgraded")

    def __init__(self, max_header_bytes: int = 64 * 1024) -> None:
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_header_bytes)
        self._out: list[bytes] = []
        self.upgraded = False

    def receive_data(self, data: bytes) -> list[Event]:
        """Events for ``data``; ``b""`` means the peer closed its side."""
        self._conn.receive_data(data)
        return self.next_events()

    def next_events(self) -> list[Event]:
        """Events from bytes already buffered (pipelined requests after a new cycle)."""
        events: list[Event] = []
        while True:
            try:
                ev = self._conn.next_event()
            except h11.RemoteProtocolError as err:
                events.append(ConnectionTerminated(0, 0, str(err), err.error_status_hint))
                return events
            if ev is h11.NEED_DATA or ev is h11.PAUSED:
                if ev is h11.PAUSED and self._conn.their_state is h11.SWITCHED_PROTOCOL:
                    self.upgraded = True
                return events
            translated = _translate(ev)
            if translated is not None:
                events.append(translated)
            if isinstance(translated, ConnectionTerminated):
                return events

    @property
    def trailing_data(self) -> bytes:
        """Bytes after a CONNECT request head (tunnel payload that came early)."""
        return bytes(self._conn.trailing_data[0])

    @property
    def buffered(self) -> int:
        """Received bytes h11 holds but has not turned into events yet (a partial head)."""
        return len(self._conn.trailing_data[0])

    @property
    def awaiting_request(self) -> bool:
        """True while no request head is pending on this connection (idle keep-alive)."""
        return self._conn.their_state is h11.IDLE

    @property
    def client_http_version(self) -> bytes:
        """The HTTP version of the client's current request (``b"1.1"``, ``b"1.0"``)."""
        return bytes(self._conn.their_http_version or b"1.1")

    @property
    def keep_alive(self) -> bool:
        return self._conn.our_state is not h11.MUST_CLOSE and (
            self._conn.their_state is not h11.MUST_CLOSE
        )

    def send_response(self, status: int, headers: Headers, *, close: bool = False) -> None:
        """Response head. ``close`` adds ``connection: close`` (drain, errors)."""
        if close:
            headers = [*headers, (b"connection", b"close")]
        if status >= 200 or self._conn.their_state is not h11.SEND_BODY:
            reason = _REASONS.get(status, b"")
            response = h11.Response(status_code=status, headers=headers, reason=reason)
            self._out.append(self._conn.send(response))

    def send_continue(self) -> bool:
        """Queue ``100 Continue`` if the client waits for it before sending its body."""
        if not self._conn.client_is_waiting_for_100_continue:
            return False
        self._out.append(
            self._conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b""
        )
        return True

    def send_data(self, data: bytes | memoryview) -> None:
        if data:
            self._out.append(self._conn.send(h11.Data(data=bytes(data))) or b"")

    def end_response(self, trailers: Headers | None = None) -> None:
        self._out.append(self._conn.send(h11.EndOfMessage(headers=trailers or [])) or b"")

    def accept_tunnel(self) -> None:
        """Answer CONNECT with 200; afterwards the connection carries raw bytes."""
        self._out.append(self._conn.send(h11.Response(status_code=200, headers=[])) or b"")
        self.upgraded = True

    def reject(self, status: int, reason: bytes) -> None:
        """Best-effort error response, then the connection must close (malformed input,
        limits). Written by hand: after a protocol error h11's state machine is unusable."""
        if self._conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = reason + b"\n"
        self._out.append(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s"
            % (status, _PHRASES.get(status, b"Error"), len(body), body)
        )

    def start_next_cycle(self) -> bool:
        """Reuse the connection for the next request; ``False`` if it must close."""
        if self._conn.our_state is h11.DONE and self._conn.their_state is h11.DONE:
            self._conn.start_next_cycle()
            return True
        return False

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out


def _request(ev: h11.Request) -> RequestReceived:
    target = bytes(ev.target)
    method = bytes(ev.method)
    headers: Headers = [(bytes(n), bytes(v)) for n, v in ev.headers]
    host = next((v for n, v in headers if n == b"host"), b"")
    scheme = b"http"
    if method == b"CONNECT":
        return RequestReceived(STREAM_ID, method, scheme, target, target, headers, False)
    if target[:1] != b"/" and b"://" in target:
        scheme, _, rest = target.partition(b"://")
        authority, slash, path = rest.partition(b"/")
        host = authority or host
        target = slash + path if slash else b"/"
    return RequestReceived(STREAM_ID, method, scheme.lower(), host, target, headers, False)


def _translate(ev: object) -> Event | None:
    if isinstance(ev, h11.Request):
        return _request(ev)
    if isinstance(ev, h11.Data):
        data = bytes(ev.data)
        return DataReceived(STREAM_ID, data, len(data))
    if isinstance(ev, h11.EndOfMessage):
        return EndOfStream(STREAM_ID)
    if isinstance(ev, h11.ConnectionClosed):
        return ConnectionTerminated(0, 0, "peer closed the connection")
    return None
