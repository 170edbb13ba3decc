"""Small real servers for the upstream pool tests: HTTP/2 (h2 sans-IO, optional mTLS) and
HTTP/1.1 (h11), on 127.0.0.1, each counting the connections it accepted.

HTTP/2 paths: ``/hello`` (200 "hello"), ``/readyz`` (200 or 503 per ``ready``), ``/echo``
(streams the request body back), ``/download?n=BYTES`` (a body of n bytes, within flow
control), ``/slow-upload`` (reads the body only when ``upload_gate`` is released),
``/reset`` (RST_STREAM before headers), ``/refuse`` (REFUSED_STREAM), ``/hang`` (never
answers). CONNECT answers 200 and echoes the tunnel's bytes.
"""

from __future__ import annotations

import contextlib
import math
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h11
import trio

from proxy.tls import TLSStream


@dataclass
class H2Server:
    ssl_context: ssl.SSLContext | None = None
    ready: bool = True
    port: int = 0
    connections: int = 0
    requests: int = 0
    paths: list[bytes] = field(default_factory=list)
    uploaded: int = 0
    downloaded: int = 0
    resets: int = 0
    goaways: int = 0
    frozen: bool = False  # stop reading: a peer that vanished without closing TCP
    upload_gate: trio.Event = field(default_factory=trio.Event)
    live: list[_H2ServerConn] = field(default_factory=list)

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            task_status.started(self.port)
            await trio.serve_listeners(self._handle, listeners, handler_nursery=nursery)

    async def _handle(self, tcp: trio.SocketStream) -> None:
        self.connections += 1
        stream: trio.abc.Stream = tcp
        if self.ssl_context is not None:
            tls = TLSStream(tcp, self.ssl_context, server_side=True)
            try:
                await tls.do_handshake()
            except Exception:
                await trio.aclose_forcefully(tcp)
                return
            stream = tls
        conn = _H2ServerConn(self, stream)
        self.live.append(conn)
        try:
            await conn.run()
        finally:
            self.live.remove(conn)
            await trio.aclose_forcefully(stream)

    async def goaway_all(self, last_stream_id: int) -> None:
        for conn in list(self.live):
            await conn.goaway(last_stream_id)


class _H2ServerConn:
    def __init__(self, server: H2Server, stream: trio.abc.Stream) -> None:
        config = h2.config.H2Configuration(
            client_side=False, header_encoding=None, validate_outbound_headers=False
        )
        self.h2 = h2.connection.H2Connection(config)
        self.server = server
        self.stream = stream
        self.lock = trio.Lock()
        self.inboxes: dict[int, trio.MemorySendChannel[bytes | None]] = {}
        self.windows: dict[int, trio.Event] = {}

    async def flush(self) -> None:
        async with self.lock:
            data = self.h2.data_to_send()
            if data:
                # the client may have gone away; the read loop notices
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await self.stream.send_all(data)

    async def goaway(self, last_stream_id: int) -> None:
        """A graceful GOAWAY: streams up to ``last_stream_id`` still complete (h2 would close
        its state machine on sending GOAWAY, so keep it open here)."""
        machine = self.h2.state_machine
        transitions = dict(machine._transitions)
        key = (
            h2.connection.ConnectionState.SERVER_OPEN,
            h2.connection.ConnectionInputs.SEND_GOAWAY,
        )
        transitions[key] = (None, h2.connection.ConnectionState.SERVER_OPEN)
        machine._transitions = transitions
        self.h2.close_connection(last_stream_id=last_stream_id)
        await self.flush()

    async def run(self) -> None:
        self.h2.initiate_connection()
        await self.flush()
        async with trio.open_nursery() as nursery:
            while True:
                try:
                    data = await self.stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break
                if not data:
                    break
                if self.server.frozen:
                    await trio.sleep_forever()
                for event in self.h2.receive_data(data):
                    self.dispatch(event, nursery)
                await self.flush()
            nursery.cancel_scope.cancel()

    def dispatch(self, event: h2.events.Event, nursery: trio.Nursery) -> None:
        if isinstance(event, h2.events.RequestReceived):
            send, receive = trio.open_memory_channel[bytes | None](math.inf)
            self.inboxes[event.stream_id] = send
            headers = dict(event.headers)
            self.server.requests += 1
            self.server.paths.append(headers.get(b":path", b"CONNECT"))
            nursery.start_soon(self.respond, event.stream_id, headers, receive)
        elif isinstance(event, h2.events.DataReceived):
            if event.stream_id in self.inboxes:
                self.inboxes[event.stream_id].send_nowait(event.data)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.server.goaways += 1
        elif isinstance(event, h2.events.StreamReset):
            self.server.resets += 1
        elif isinstance(event, h2.events.StreamEnded):
            if event.stream_id in self.inboxes:
                self.inboxes[event.stream_id].send_nowait(None)
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            for ev in self.windows.values():
                ev.set()

    async def read(self, stream_id: int, receive: trio.MemoryReceiveChannel[bytes | None]):
        chunk = await receive.receive()
        if chunk:
            self.h2.acknowledge_received_data(len(chunk), stream_id)
            await self.flush()
        return chunk

    async def send_body(self, stream_id: int, data: bytes, *, end: bool) -> None:
        view = memoryview(data)
        while view:
            window = self.h2.local_flow_control_window(stream_id)
            if window <= 0:
                self.windows[stream_id] = ev = trio.Event()
                await ev.wait()
                continue
            n = min(window, self.h2.max_outbound_frame_size, len(view))
            self.h2.send_data(stream_id, bytes(view[:n]))
            self.server.downloaded += n
            view = view[n:]
            await self.flush()
        if end:
            self.h2.end_stream(stream_id)
            await self.flush()

    async def respond(self, sid: int, headers: dict[bytes, bytes], receive) -> None:
        with contextlib.suppress(h2.exceptions.H2Error):  # the client reset the stream
            await self._respond(sid, headers, receive)

    async def _respond(self, sid: int, headers: dict[bytes, bytes], receive) -> None:
        path = headers.get(b":path", b"")
        method = headers[b":method"]
        if method == b"CONNECT" or path == b"/echo":
            self.h2.send_headers(sid, [(b":status", b"200")])
            await self.flush()
            while (chunk := await self.read(sid, receive)) is not None:
                await self.send_body(sid, chunk, end=False)
            self.h2.end_stream(sid)
        elif path == b"/hello":
            self.h2.send_headers(sid, [(b":status", b"200"), (b"x-conn", b"%d" % id(self))])
            await self.send_body(sid, b"hello", end=True)
        elif path == b"/readyz":
            status = b"200" if self.server.ready else b"503"
            self.h2.send_headers(sid, [(b":status", status)], end_stream=True)
        elif path.startswith(b"/download"):
            n = int(path.split(b"=")[1])
            self.h2.send_headers(sid, [(b":status", b"200")])
            block = b"x" * 65536
            while n > 0:
                await self.send_body(sid, block[: min(n, len(block))], end=False)
                n -= len(block)
            self.h2.end_stream(sid)
        elif path == b"/slow-upload":
            await self.server.upload_gate.wait()
            while (chunk := await self.read(sid, receive)) is not None:
                self.server.uploaded += len(chunk)
            self.h2.send_headers(sid, [(b":status", b"200")], end_stream=True)
        elif path == b"/bad-status":
            self.h2.send_headers(sid, [(b":status", b"2x0")], end_stream=True)
        elif path == b"/reset":
            self.h2.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
        elif path == b"/refuse":
            self.h2.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
        elif path == b"/hang":
            await trio.sleep_forever()
        else:
            self.h2.send_headers(sid, [(b":status", b"404")], end_stream=True)
        await self.flush()


Handler = Callable[[h11.Request, bytes], Awaitable[tuple[int, list[tuple[bytes, bytes]], bytes]]]


@dataclass
class H1Server:
    """HTTP/1.1 keep-alive server: answers ``/hello``, echoes ``/echo``; ``/close`` answers
    with ``connection: close``; ``/hang`` never answers. Counts accepted connections and
    requests."""

    port: int = 0
    connections: int = 0
    requests: int = 0
    drop_idle: bool = False  # close kept-alive connections silently (a backend idle timeout)

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            task_status.started(self.port)
            await trio.serve_listeners(self._handle, listeners, handler_nursery=nursery)

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        if self.drop_idle:
            await self._one_then_drop(stream)
            return
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request, body = await _h1_read_request(conn, stream)
                if request is None:
                    return
                self.requests += 1
                if request.target == b"/hang":
                    await trio.sleep_forever()  # until the client closes the connection
                close = request.target == b"/close"
                headers = [(b"content-length", b"%d" % len(body or b"hello"))]
                if close:
                    headers.append((b"connection", b"close"))
                payload = body if request.target == b"/echo" else b"hello"
                headers[0] = (b"content-length", b"%d" % len(payload))
                out = conn.send(h11.Response(status_code=200, headers=headers))
                out += conn.send(h11.Data(data=payload)) + conn.send(h11.EndOfMessage())
                await stream.send_all(out)
                if conn.our_state is not h11.DONE or close:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, h11.ProtocolError):
            return
        finally:
            await trio.aclose_forcefully(stream)

    async def _one_then_drop(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        request, _ = await _h1_read_request(conn, stream)
        if request is not None:
            self.requests += 1
            out = conn.send(h11.Response(status_code=200, headers=[(b"content-length", b"5")]))
            await stream.send_all(out + conn.send(h11.Data(data=b"hello")))
            await stream.send_all(conn.send(h11.EndOfMessage()))
            await trio.sleep(0.05)
        await trio.aclose_forcefully(stream)


async def echo_tcp(stream: trio.SocketStream) -> None:
    """A plain TCP echo handler (``trio.serve_tcp``)."""
    try:
        while data := await stream.receive_some(65536):
            await stream.send_all(data)
    except trio.BrokenResourceError:
        pass
    finally:
        await trio.aclose_forcefully(stream)


async def _h1_read_request(conn: h11.Connection, stream: trio.SocketStream):
    request = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
            continue
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return request, bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            return None, b""
