"""A TLS stream that moves many records per system call.

trio's ``SSLStream`` feeds OpenSSL one socket read at a time with a small buffer and decrypts
one record per ``receive_some``; on bulk transfers that halves throughput. This stream drives an
``ssl.SSLObject`` over two ``ssl.MemoryBIO`` objects itself: each socket read fills a large
preallocated buffer (``recv_into``, no per-read allocation), every complete record in it is
decrypted in one go, and each ``send_all`` encrypts the whole payload into as many records as
needed and writes them with one ``send_all`` on the transport.

Ownership: a :class:`TLSStream` owns the transport it wraps; :meth:`aclose` closes it.
Concurrency: one task may send while another receives (the trio ``Stream`` contract); two
concurrent senders or two concurrent receivers raise ``trio.BusyResourceError``.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import Any, Final

import trio

from proxy.errors import ProxyError
from proxy.tls.sockio import SocketIO

DEFAULT_RECEIVE_BUFFER: Final = 256 * 1024


class TLSHandshakeError(ProxyError):
    """The TLS handshake with the remote side failed (bad certificate, protocol, ALPN...)."""


class TLSStream(trio.abc.Stream):
    """TLS over a trio socket stream through ``ssl.MemoryBIO``.

    ``transport`` must be a :class:`trio.SocketStream` (its socket is read with ``recv_into``).
    The handshake runs in :meth:`do_handshake` (call it first; bound it with the caller's cancel
    scope); :meth:`send_all` and :meth:`receive_some` call it implicitly if needed.

    A peer that closes TCP without a TLS ``close_notify`` (a truncation) makes
    :meth:`receive_some` raise ``trio.BrokenResourceError``; a clean ``close_notify`` reads as
    end of stream (``b""``).
    """

    def __init__(
        self,
        transport: trio.SocketStream,
        context: ssl.SSLContext,
        *,
        server_side: bool = False,
        server_hostname: str | None = None,
        receive_buffer_size: int = DEFAULT_RECEIVE_BUFFER,
    ) -> None:
        self.transport_stream = transport
        self._reader = SocketIO(transport.socket)
        self._writer = SocketIO(transport.socket)
        allow_bulk_sends(transport)
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(
            self._incoming,
            self._outgoing,
            server_side=server_side,
            server_hostname=server_hostname,
        )
        # ``SSLObject.read`` is a Python wrapper around its C object's ``read`` (same
        # arguments, same exceptions); it runs once per 16 KiB record, ~65k times per GiB.
        inner: Any = getattr(self._ssl, "_sslobj", self._ssl)
        self._read_record: Callable[[int, memoryview], int] = inner.read
        self._plain_pending: Callable[[], int] = inner.pending
        self._raw = bytearray(receive_buffer_size)
        self._raw_view = memoryview(self._raw)
        self._plain = bytearray(receive_buffer_size)
        self._plain_view = memoryview(self._plain)
        self._send_lock = trio.StrictFIFOLock()
        self._handshake_lock = trio.Lock()
        self._handshake_done = False
        self._receiving = False
        self._sending = False
        self._eof_received = False
        self._close_notify_sent = False
        self._closed = False

    @property
    def ssl_object(self) -> ssl.SSLObject:
        """The OpenSSL session: ``selected_alpn_protocol()``, ``getpeercert()``, ``version()``."""
        return self._ssl

    # -- handshake -------------------------------------------------------------------------

    async def do_handshake(self) -> None:
        """Run the TLS handshake once. Raises :class:`TLSHandshakeError` on a TLS failure and
        ``trio.BrokenResourceError`` if the peer goes away mid-handshake."""
        async with self._handshake_lock:
            if self._handshake_done:
                return
            self._check_open()
            while True:
                try:
                    self._ssl.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    await self._flush()
                    if not await self._fill():
                        raise trio.BrokenResourceError(
                            "peer closed the connection during the TLS handshake"
                        ) from None
                except ssl.SSLError as err:
                    await self._flush_quietly()
                    raise TLSHandshakeError(f"TLS handshake failed: {err}") from err
            self._handshake_done = True
            await self._flush()

    # -- receiving -------------------------------------------------------------------------

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Up to ``max_bytes`` of plaintext (default: the buffer size); ``b""`` at end."""
        limit = len(self._plain) if max_bytes is None else min(max_bytes, len(self._plain))
        if limit < 1:
            raise ValueError("max_bytes must be >= 1")
        n = await self.receive_into(self._plain_view[:limit])
        return bytes(self._plain_view[:n])

    async def receive_into(self, buffer: memoryview) -> int:
        """Decrypt into ``buffer``; return the count (``0`` at end of stream). Lets a byte pump
        reuse one buffer for the whole life of a tunnel."""
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving on this TLS stream")
        self._receiving = True
        try:
            if not self._handshake_done:
                await self.do_handshake()
            return await self._receive_into(buffer)
        finally:
            self._receiving = False

    async def _receive_into(self, buffer: memoryview) -> int:
        while True:
            self._check_open()
            if self._eof_received:
                return 0
            n = self._decrypt_available(buffer)
            if self._outgoing.pending:
                await self._flush()
            if n or self._eof_received:
                return n
            if not await self._fill():
                raise trio.BrokenResourceError("peer closed TCP without a TLS close_notify")

    def _decrypt_available(self, buffer: memoryview) -> int:
        """Decrypt every complete record already buffered, up to ``len(buffer)`` bytes."""
        total = 0
        size = len(buffer)
        read = self._read_record
        incoming = self._incoming
        while total < size:
            # Nothing buffered, raw or decrypted: a read could only raise SSLWantReadError,
            # an exception (~2 µs) on every receive when the buffered records are used up.
            if not incoming.pending and not self._plain_pending():
                break
            try:
                got = read(size - total, buffer[total:])
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except ssl.SSLZeroReturnError:
                self._eof_received = True
                break
            except ssl.SSLError as err:
                raise trio.BrokenResourceError(f"TLS error while reading: {err}") from err
            if not got:
                # OpenSSL reports the peer's close_notify as a zero-length read.
                self._eof_received = True
                break
            total += got
        return total

    async def _fill(self) -> bool:
        """One socket read into the big buffer, fed to OpenSSL; ``False`` at TCP EOF."""
        n = await self._reader.recv_into(self._raw_view)
        if n == 0:
            self._incoming.write_eof()
            return False
        self._incoming.write(self._raw_view[:n])
        return True

    # -- sending ---------------------------------------------------------------------------

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt and send all of ``data``; returns when the transport accepted it."""
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this TLS stream")
        self._sending = True
        try:
            self._check_open()
            if not self._handshake_done:
                await self.do_handshake()
            if self._close_notify_sent:
                raise trio.ClosedResourceError("send_eof() was called on this TLS stream")
            if data:
                try:
                    self._ssl.write(data)
                except ssl.SSLError as err:
                    raise trio.BrokenResourceError(f"TLS error while writing: {err}") from err
            await self._flush()
        finally:
            self._sending = False

    def send_nowait(self, parts: Sequence[bytes | bytearray | memoryview]) -> int | None:
        """Encrypt ``parts`` and write them to the socket now, without waiting: ``None`` (and
        nothing done) when that is not possible now (another task is sending or flushing,
        no handshake yet, closed); else the count of encrypted bytes the kernel did not take,
        kept in order ahead of anything sent later: call :meth:`send_all` (``b""`` will do)
        to push them out. The caller may reuse its buffers as soon as this returns. Raises
        ``trio.BrokenResourceError`` on a TLS or socket error."""
        raw = self._writer.raw
        if raw is None or not self.send_ready:
            return None
        write = self._ssl.write
        try:
            for part in parts:
                if part:
                    write(part)
        except ssl.SSLError as err:
            raise trio.BrokenResourceError(f"TLS error while writing: {err}") from err
        out = self._outgoing
        data = out.read()
        try:
            sent = raw.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as err:
            raise trio.BrokenResourceError(f"socket error: {err}") from err
        if sent < len(data):
            out.write(memoryview(data)[sent:])  # the BIO is empty: the rest stays first
        return out.pending

    @property
    def send_ready(self) -> bool:
        """:meth:`send_nowait` can write now (it stays so until the caller awaits)."""
        return not (
            self._sending
            or self._send_lock.locked()
            or not self._handshake_done
            or self._close_notify_sent
            or self._closed
            or self._writer.raw is None
        )

    @property
    def output_pending(self) -> bool:
        """Encrypted bytes wait for :meth:`send_all` (left by :meth:`send_nowait`)."""
        return self._outgoing.pending > 0

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport_stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        """Send a TLS ``close_notify`` (TLS 1.3 closes only our write side); receiving goes
        on until the peer's own ``close_notify``."""
        if self._close_notify_sent:
            return
        self._check_open()
        if not self._handshake_done:
            await self.do_handshake()
        self._close_notify_sent = True
        try:
            self._ssl.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        except ssl.SSLError as err:
            raise trio.BrokenResourceError(f"TLS error on close_notify: {err}") from err
        await self._flush()

    async def _flush(self) -> None:
        """Write what OpenSSL produced. The lock keeps records in order when the receive side
        (handshake, post-handshake messages) and the send side flush at once; uncontended it
        is taken without a scheduler pass (trio's ``Lock.acquire`` yields even then, once per
        record batch; :class:`SocketIO` already paces the task)."""
        lock = self._send_lock
        try:
            lock.acquire_nowait()
        except trio.WouldBlock:
            await lock.acquire()
        try:
            if self._outgoing.pending:
                await self._writer.send_all(self._outgoing.read())
            else:
                await trio.lowlevel.checkpoint()
        finally:
            lock.release()

    async def _flush_quietly(self) -> None:
        """Best effort: deliver a TLS alert before giving up on the connection."""
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self._flush()

    # -- closing ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("this TLS stream was closed")

    async def aclose(self) -> None:
        """Send ``close_notify`` if the session is up (without waiting for the peer's), then
        close the transport. Idempotent; safe to call on a broken connection."""
        if self._closed:
            return
        try:
            if self._handshake_done and not self._close_notify_sent:
                with trio.move_on_after(1.0) as scope:
                    scope.shield = True
                    await self.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
            pass
        finally:
            self._closed = True
            await self.transport_stream.aclose()


async def open_tls_stream(
    host: str,
    port: int,
    context: ssl.SSLContext,
    *,
    server_hostname: str | None = None,
    receive_buffer_size: int = DEFAULT_RECEIVE_BUFFER,
) -> TLSStream:
    """Connect over TCP and complete a client-side handshake; the caller owns the result.

    Bound it with the caller's cancel scope. Raises ``OSError`` if TCP fails,
    :class:`TLSHandshakeError` if TLS does (the socket is closed either way).
    """
    tcp = await trio.open_tcp_stream(host, port)
    tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    stream = TLSStream(
        tcp,
        context,
        server_side=False,
        server_hostname=server_hostname if server_hostname is not None else host,
        receive_buffer_size=receive_buffer_size,
    )
    try:
        await stream.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(tcp)
        raise
    return stream


BULK_NOTSENT_LOWAT: Final = 1 << 20


def allow_bulk_sends(stream: trio.SocketStream) -> None:
    """trio sets ``TCP_NOTSENT_LOWAT`` to 16 KiB on every socket stream, so one ``send_all``
    of 256 KiB (a TLS payload, a tunnel buffer) became many ``send`` calls, each after an
    ``EPOLLOUT`` wakeup. Raise it to 1 MiB for streams that move bulk data (best effort)."""
    with contextlib.suppress(OSError, AttributeError):
        stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, BULK_NOTSENT_LOWAT)
