"""``serve_listener``: accept loop, connection limit, protocol detection, mTLS admission,
graceful drain.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
from collections.abc import Callable

import trio

from proxy.listeners.exchange import (
    Downstream,
    DownstreamGone,
    ListenerKind,
    PeerIdentity,
    RequestHandler,
)
from proxy.listeners.h1driver import H1Connection
from proxy.listeners.h2driver import H2Connection
from proxy.listeners.limits import DrainSignal, ListenerLimits
from proxy.protocol import H2_PREFACE
from proxy.tls import TLSHandshakeError, TLSStream

VerifyPeer = Callable[[ssl.SSLObject], PeerIdentity]
log = logging.getLogger(__name__)
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_CLIENT_GONE = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM}
DEFAULT_LIMITS = ListenerLimits()
_TLS_HANDSHAKE_RECORD = 0x16
_PLAINTEXT_REFUSAL = (
    b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 55\r\n"
    b"connection: close\r\n\r\nthis port accepts only mutual TLS 1.3 with ALPN h2 \r\n"
)


async def open_listening_socket(
    host: str, port: int, *, reuse_port: bool = False, backlog: int = 1024
) -> trio.socket.SocketType:
    """A bound, listening TCP socket (``SO_REUSEPORT`` lets N worker processes share it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        await sock.bind((host, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


class _Connections:
    """Live connection count of one listener; wakes the drain when it reaches zero."""

    def __init__(self) -> None:
        self.count = 0
        self._empty = trio.Event()
        self._empty.set()

    def add(self) -> None:
        self.count += 1
        if self._empty.is_set():
            self._empty = trio.Event()

    def remove(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._empty.set()

    async def wait_empty(self) -> None:
        await self._empty.wait()


async def serve_listener(
    handler: RequestHandler,
    *,
    kind: ListenerKind,
    host: str = "127.0.0.1",
    port: int = 0,
    limits: ListenerLimits = DEFAULT_LIMITS,
    drain: DrainSignal | None = None,
    ssl_context: ssl.SSLContext | None = None,
    verify_peer: VerifyPeer | None = None,
    validate_inbound_headers: bool = True,
    reuse_port: bool = False,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve one listener until ``drain`` is set, then drain and return.

    ``kind="outbound"``: plaintext HTTP/1.1 (origin- or absolute-form), h2c with prior
    knowledge and HTTP/1.1 CONNECT. ``kind="inbound"``: TLS 1.3 through ``ssl_context``
    (which must require client certificates and offer ALPN ``h2``), then
    ``verify_peer(ssl_object)`` returns the caller's :class:`PeerIdentity` (cluster name and
    verified identity string) or raises (connection closed before any request is read); it
    reaches the engine as ``exchange.downstream.peer`` (``.peer_cluster``/``.peer_identity``).
    ``validate_inbound_headers=False`` skips h2's header validation (only for the
    authenticated inbound leg).

    ``task_status.started(port)`` reports the bound port. On drain: the listening socket
    closes, HTTP/2 connections get GOAWAY, HTTP/1.1 ones ``connection: close``; after
    ``limits.drain_timeout_s`` whatever is left is cancelled.
    """
    if kind == "inbound" and (ssl_context is None or verify_peer is None):
        raise ValueError("the inbound listener needs ssl_context and verify_peer")
    drain = drain or DrainSignal()
    listener = await open_listening_socket(host, port, reuse_port=reuse_port)
    connections = _Connections()
    admit = _Admission(
        handler,
        kind=kind,
        limits=limits,
        drain=drain,
        ssl_context=ssl_context,
        verify_peer=verify_peer,
        validate_inbound_headers=validate_inbound_headers,
    )
    async with trio.open_nursery() as conn_nursery:
        with listener:
            async with trio.open_nursery() as accept_nursery:
                accept_nursery.start_soon(_accept_loop, listener, conn_nursery, admit, connections)
                task_status.started(listener.getsockname()[1])
                await drain.wait()
                accept_nursery.cancel_scope.cancel()
        with trio.move_on_after(limits.drain_timeout_s):
            await connections.wait_empty()
        conn_nursery.cancel_scope.cancel()


async def _accept_loop(
    listener: trio.socket.SocketType,
    nursery: trio.Nursery,
    admit: _Admission,
    connections: _Connections,
) -> None:
    while True:
        try:
            sock, _ = await listener.accept()
        except OSError as err:
            if err.errno in _OUT_OF_RESOURCES:  # back off instead of spinning
                log.warning("accept failed (%s); backing off", err)
                await trio.sleep(0.05)
                continue
            if err.errno in _CLIENT_GONE:
                continue
            raise
        if connections.count >= admit.limits.max_connections:
            sock.close()
            continue
        connections.add()
        nursery.start_soon(_serve_connection, sock, admit, connections)


async def _serve_connection(
    sock: trio.socket.SocketType, admit: _Admission, connections: _Connections
) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stream = trio.SocketStream(sock)
        try:
            await admit.serve(stream)
        except Exception as err:
            # The client leaving is normal; a bug must cost one connection, never the listener.
            if not _client_gone(err):
                log.exception("connection from %s failed", _remote(stream))
        finally:
            await trio.aclose_forcefully(stream)
    finally:
        connections.remove()


class _Admission:
    """Everything a connection of one listener needs, decided once per listener."""

    def __init__(
        self,
        handler: RequestHandler,
        *,
        kind: ListenerKind,
        limits: ListenerLimits,
        drain: DrainSignal,
        ssl_context: ssl.SSLContext | None,
        verify_peer: VerifyPeer | None,
        validate_inbound_headers: bool,
    ) -> None:
        self.handler = handler
        self.kind = kind
        self.limits = limits
        self.drain = drain
        self.ssl_context = ssl_context
        self.verify_peer = verify_peer
        self.validate_inbound_headers = validate_inbound_headers

    async def serve(self, stream: trio.SocketStream) -> None:
        remote = _remote(stream)
        if self.kind == "outbound":
            await self._serve_plaintext(stream, remote)
        else:
            await self._serve_mtls(stream, remote)

    async def _serve_plaintext(self, stream: trio.SocketStream, remote: str) -> None:
        initial = b""
        with trio.move_on_after(self.limits.header_read_timeout_s):
            while len(initial) < len(H2_PREFACE) and H2_PREFACE.startswith(initial):
                data = await stream.receive_some(self.limits.read_size)
                if not data:
                    return
                initial += data
        if not initial:
            return
        idle = self.limits.tunnel_idle_timeout_s
        if initial.startswith(H2_PREFACE):
            down = Downstream("outbound", remote, None, "h2c", tunnel_idle_timeout_s=idle)
            await H2Connection(
                stream, self.handler, down, self.limits, self.drain, initial=initial
            ).serve()
        else:
            down = Downstream("outbound", remote, None, "http/1.1", tunnel_idle_timeout_s=idle)
            await H1Connection(
                stream, self.handler, down, self.limits, self.drain, initial=initial
            ).serve()

    async def _serve_mtls(self, stream: trio.SocketStream, remote: str) -> None:
        assert self.ssl_context is not None and self.verify_peer is not None
        with trio.move_on_after(self.limits.header_read_timeout_s) as scope:
            first = await stream.socket.recv(1, socket.MSG_PEEK)
            if first and first[0] != _TLS_HANDSHAKE_RECORD:
                await stream.send_all(_PLAINTEXT_REFUSAL)
                return
            tls = TLSStream(stream, self.ssl_context, server_side=True)
            try:
                await tls.do_handshake()
            except (TLSHandshakeError, trio.BrokenResourceError):
                return
        if scope.cancelled_caught:
            return
        try:
            obj = tls.ssl_object
            if obj.version() != "TLSv1.3" or obj.selected_alpn_protocol() != "h2":
                return
            try:
                peer = self.verify_peer(obj)
            except Exception:
                return
            idle = self.limits.tunnel_idle_timeout_s
            down = Downstream("inbound", remote, peer, "h2", tls=True, tunnel_idle_timeout_s=idle)
            await H2Connection(
                tls,
                self.handler,
                down,
                self.limits,
                self.drain,
                validate_headers=self.validate_inbound_headers,
            ).serve()
        finally:
            with trio.move_on_after(1) as close_scope:
                close_scope.shield = True
                await tls.aclose()


_GONE = (DownstreamGone, trio.BrokenResourceError, trio.ClosedResourceError)


def _client_gone(err: BaseException) -> bool:
    """True if ``err`` (or every leaf of an exception group) says the client went away."""
    if isinstance(err, BaseExceptionGroup):
        return all(_client_gone(e) for e in err.exceptions)
    return isinstance(err, _GONE)


def _remote(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "unknown"
    return f"{host}:{port}"
