"""One full-duplex HTTP/2 request over TLS 1.3 with trio and ``h2`` (httpx cannot send and
receive on one request at once).

:func:`open_duplex` connects (TLS with the caller's context, ALPN ``h2`` required), sends the
request headers, waits for the response headers and returns a :class:`DuplexStream`: ``send``
writes request body bytes (HTTP/2 flow control respected), ``receive_line`` returns the response
body one NDJSON line at a time. Its reader task runs in the caller's nursery; ``aclose`` stops
it and closes the connection. A non-2xx answer raises :class:`DuplexRefused` with
the status and body; a network failure or a protocol error raises :class:`DuplexBroken`.
Received data is acknowledged at once (a slow consumer never stalls our own sends); the server
bounds what it sends (one message per snapshot version).
"""

from __future__ import annotations

import contextlib
import ssl
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import trio

#: Our receive window (stream and connection): a full bundle set at 1,000 clusters is ~1.2 MiB.
RECEIVE_WINDOW = 16 * 1024 * 1024
#: Frames the server may send us: one per pushed snapshot instead of one per 16 KiB (the
#: server's HTTP/2 stack flushes, encrypts and sends every frame on its own).
MAX_FRAME_BYTES = 1024 * 1024
#: Refuse a response line longer than this (the server never sends one near it).
MAX_LINE_BYTES = 64 * 1024 * 1024
_READ_BYTES = 256 * 1024


class DuplexError(Exception):
    """Root of this module's errors."""


class DuplexBroken(DuplexError):
    """The connection failed or the server broke the protocol (retry later)."""


class DuplexRefused(DuplexError):
    """The server answered a non-2xx status (``status``, ``body``)."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body
        super().__init__(f"HTTP {status}: {body[:300]!r}")


class StreamClosed(DuplexError):
    """The server ended the response body (no more lines)."""


@dataclass(frozen=True)
class DuplexRequest:
    """What to open: ``url`` (https, its path and query) plus request headers."""

    url: str
    headers: tuple[tuple[str, str], ...] = ()
    connect_timeout_s: float = 10.0


class DuplexStream:
    """An open request/response pair; see the module docstring."""

    def __init__(
        self,
        tls: trio.SSLStream[trio.SocketStream],
        conn: h2.connection.H2Connection,
        stream_id: int,
    ) -> None:
        self._tls = tls
        self._conn = conn
        self._id = stream_id
        self._send_lock = trio.Lock()
        self._message_lock = trio.Lock()
        self._window = trio.Event()
        self._data = trio.Event()
        self._lines: deque[bytes] = deque()
        self._partial = bytearray()
        self._ended = False
        self._failure: DuplexError | None = None
        self.status = 0
        self.response_body = bytearray()
        self.headers_received = trio.Event()
        self._cancel = trio.CancelScope()

    async def _flush(self) -> None:
        data = self._conn.data_to_send()
        if data:
            async with self._send_lock:
                await self._tls.send_all(data)

    async def send(self, data: bytes) -> None:
        """Write ``data`` to the request body (waits for flow-control window). Concurrent
        calls are serialised, so each call's bytes stay contiguous."""
        async with self._message_lock:
            await self._send_locked(data)

    async def _send_locked(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            self._raise_if_done()
            try:
                window = self._conn.local_flow_control_window(self._id)
            except h2.exceptions.StreamClosedError as err:
                raise StreamClosed("the server closed the stream") from err
            if window <= 0:
                self._window = trio.Event()
                await self._window.wait()
                continue
            size = min(window, self._conn.max_outbound_frame_size, len(view))
            self._conn.send_data(self._id, bytes(view[:size]))
            view = view[size:]
            await self._flush_broken()

    async def _flush_broken(self) -> None:
        try:
            await self._flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as err:
            self._fail(DuplexBroken(f"connection lost while sending: {err!r}"))
            raise DuplexBroken(f"connection lost while sending: {err!r}") from err

    def _raise_if_done(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._ended:
            raise StreamClosed("the server ended the stream")

    async def receive_line(self) -> bytes:
        """The next response line (without its newline). Raises :class:`StreamClosed` once the
        server ended the body, or the failure that broke the connection."""
        while not self._lines:
            self._raise_if_done()
            self._data = trio.Event()
            await self._data.wait()
        return self._lines.popleft()

    def _fail(self, failure: DuplexError) -> None:
        if self._failure is None:
            self._failure = failure
        self._wake_all()

    def _wake_all(self) -> None:
        self._data.set()
        self._window.set()
        self.headers_received.set()

    def _on_data(self, event: h2.events.DataReceived) -> None:
        self._conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        if not 200 <= self.status < 300:
            self.response_body += event.data or b""
            self._data.set()
            return
        self._partial += event.data or b""
        while (end := self._partial.find(b"\n")) >= 0:
            self._lines.append(bytes(self._partial[:end]))
            del self._partial[: end + 1]
        if len(self._partial) > MAX_LINE_BYTES:
            self._fail(DuplexBroken(f"a response line is over {MAX_LINE_BYTES} bytes"))
        self._data.set()

    def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived) and event.stream_id == self._id:
            for name, value in event.headers:
                if name == b":status":
                    self.status = int(value)
            self.headers_received.set()
        elif isinstance(event, h2.events.DataReceived) and event.stream_id == self._id:
            self._on_data(event)
        elif isinstance(event, h2.events.StreamEnded) and event.stream_id == self._id:
            if self._partial:
                self._lines.append(bytes(self._partial))
                self._partial.clear()
            self._ended = True
            self._wake_all()
        elif isinstance(event, h2.events.StreamReset) and event.stream_id == self._id:
            self._fail(DuplexBroken(f"the server reset the stream (error {event.error_code})"))
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._fail(DuplexBroken(f"the server closed the connection ({event.error_code})"))
        elif isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            self._window.set()

    async def aclose(self) -> None:
        """Stop the reader task and close the connection (idempotent, never raises)."""
        self._cancel.cancel()
        self._fail(StreamClosed("the stream was closed"))
        closing_errors = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)
        with (
            trio.CancelScope(shield=True),
            trio.move_on_after(1),
            contextlib.suppress(*closing_errors),
        ):
            await self._tls.aclose()

    async def pump(self) -> None:
        """Read the connection until it ends or :meth:`aclose`; every failure is handed to the
        waiting calls."""
        with self._cancel:
            await self._pump()

    async def _pump(self) -> None:
        try:
            while True:
                data = await self._tls.receive_some(_READ_BYTES)
                if not data:
                    self._fail(DuplexBroken("the server closed the connection"))
                    return
                for event in self._conn.receive_data(data):
                    self._on_event(event)
                await self._flush()
        except h2.exceptions.ProtocolError as err:
            self._fail(DuplexBroken(f"HTTP/2 protocol error: {err}"))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as err:
            self._fail(DuplexBroken(f"connection lost: {err!r}"))


async def _connect(
    request: DuplexRequest, context: ssl.SSLContext
) -> trio.SSLStream[trio.SocketStream]:
    parts = urlsplit(request.url)
    if parts.scheme != "https" or not parts.hostname:
        raise DuplexBroken(f"{request.url}: only https:// URLs are supported")
    try:
        with trio.fail_after(request.connect_timeout_s):
            tcp = await trio.open_tcp_stream(parts.hostname, parts.port or 443)
            tls = trio.SSLStream(tcp, context, server_hostname=parts.hostname)
            await tls.do_handshake()
    except (OSError, trio.BrokenResourceError, trio.TooSlowError) as err:
        raise DuplexBroken(f"cannot connect to {request.url}: {err!r}") from err
    if tls.selected_alpn_protocol() != "h2":
        await tls.aclose()
        raise DuplexBroken(f"{request.url} did not agree to HTTP/2 (ALPN)")
    return tls


def _request_headers(request: DuplexRequest) -> list[tuple[str, str]]:
    parts = urlsplit(request.url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return [
        (":method", "POST"),
        (":scheme", "https"),
        (":authority", parts.netloc),
        (":path", path),
        *request.headers,
    ]


async def open_duplex(
    request: DuplexRequest, context: ssl.SSLContext, nursery: trio.Nursery
) -> DuplexStream:
    """Open ``request`` (see the module docstring). The reader task runs in ``nursery``; the
    caller closes the stream with :meth:`DuplexStream.aclose`."""
    tls = await _connect(request, context)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    codes = h2.settings.SettingCodes
    conn.local_settings = h2.settings.Settings(
        client=True,
        initial_values={
            codes.INITIAL_WINDOW_SIZE: RECEIVE_WINDOW,
            codes.MAX_FRAME_SIZE: MAX_FRAME_BYTES,
        },
    )
    # Accept big frames at once: h2 raises its limit only at the next receive after the
    # server's SETTINGS ACK, but the server may send one in the same read as that ACK.
    conn.max_inbound_frame_size = MAX_FRAME_BYTES
    conn.initiate_connection()
    conn.increment_flow_control_window(RECEIVE_WINDOW)
    stream_id = conn.get_next_available_stream_id()
    conn.send_headers(stream_id, _request_headers(request))
    duplex = DuplexStream(tls, conn, stream_id)
    try:
        await duplex._flush_broken()
        nursery.start_soon(duplex.pump)
        with trio.fail_after(request.connect_timeout_s):
            await duplex.headers_received.wait()
            await _check_status(duplex)
    except trio.TooSlowError as err:
        await duplex.aclose()
        raise DuplexBroken(f"{request.url}: no complete response headers in time") from err
    except BaseException:
        await duplex.aclose()
        raise
    return duplex


async def _check_status(duplex: DuplexStream) -> None:
    if duplex._failure is not None and not duplex.status:
        raise duplex._failure
    if 200 <= duplex.status < 300:
        return
    while not duplex._ended and duplex._failure is None:
        duplex._data = trio.Event()
        await duplex._data.wait()
    raise DuplexRefused(duplex.status, bytes(duplex.response_body))
