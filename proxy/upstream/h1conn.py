"""One HTTP/1.1 keep-alive client connection (:mod:`proxy.upstream.h1wire`) over a trio stream.

All I/O happens in the caller's task (one request at a time). The pool returns the connection
after a response only when :attr:`H1Connection.reusable` says both sides finished cleanly and
nobody asked for ``connection: close``.
"""

from __future__ import annotations

import os
import select
from collections.abc import AsyncIterator, Awaitable, Callable

import trio

from proxy.errors import ResetBeforeHeaders, UpstreamError, UpstreamStreamBroken
from proxy.upstream import h1wire
from proxy.upstream.h1body import H1BodyReader
from proxy.upstream.h1deadlines import H1Deadlines, H1Watch
from proxy.upstream.models import Headers, UpstreamRequest

DoneCallback = Callable[[bool], Awaitable[None]]
_IO_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class H1Connection(H1BodyReader):
    """An HTTP/1.1 client connection; owns ``stream`` and closes it in :meth:`aclose`.

    The wire format is :mod:`proxy.upstream.h1wire` (h11's checks, without its per-event
    machinery: this is on every request to an HTTP/1.1 backend).

    With a ``nursery``, a request body is sent by a task there while the caller reads the
    response, so a backend that answers before reading the whole upload (413, 401...) is not
    held up by it; the upload stops when the response is complete (the connection is then not
    reused). The sender is stopped, and waited for, before the response is released or the
    connection closed: it never outlives the exchange. Without a nursery the body is sent
    before the response is read."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        label: str,
        endpoint_key: str,
        read_size: int,
        nursery: trio.Nursery | None = None,
    ):
        self.stream = stream
        # Plain TCP: reads and writes go to the socket directly (see _write, _receive), and
        # looks_stale polls it with one poll object (trio's is_readable builds one per call).
        self._socket = stream.socket if isinstance(stream, trio.SocketStream) else None
        self._poller: select.poll | None = None
        if self._socket is not None:
            self._poller = select.poll()
            self._poller.register(self._socket.fileno(), select.POLLIN)
        self._nursery = nursery
        self._sending: trio.CancelScope | None = None
        self._sender_left = trio.Event()
        self._body_failure: BaseException | None = None  # the request body's source broke
        self._label = label
        self._key = endpoint_key
        self._read_size = read_size
        self._headers_received = False
        self._buffer = bytearray()
        self._method = b""
        self._sent_all = False  # our request is complete
        self._received_all = False  # their response is complete
        self._keep_alive = True
        self._eof = False
        self._answer_due = False  # a request went out and nothing was read since (_receive)
        # The response-head deadline, registered only if the exchange has to wait (see
        # expect_head_by): the answer is usually read right after one yield.
        self._head_deadlines: H1Deadlines | None = None
        self._head_deadline = 0.0
        self._head_watch: H1Watch | None = None
        self._remaining: int | bool | None = 0  # response body framing (see h1wire)
        self._chunk_left = 0  # chunked: bytes left in the current chunk (-1: need its CRLF)
        self._counted = False
        self.requests_done = 0

    @property
    def reusable(self) -> bool:
        """True when the exchange finished cleanly and keep-alive was not refused."""
        return self._sent_all and self._received_all and self._keep_alive

    @property
    def fileno(self) -> int | None:
        """The socket's descriptor (plain TCP), for :class:`proxy.upstream.h1idle.IdleProbe`."""
        return None if self._socket is None else self._socket.fileno()

    def looks_stale(self, readable: bool | None = None) -> bool:
        """An idle keep-alive socket that is readable was closed (or spoke out of turn) by
        the server: reusing it would fail. ``readable``: what this batch's poll of the
        pool's idle connections found for this socket (``None``: poll it now)."""
        if self._buffer:  # bytes beyond the last response: the stream is out of step
            return True
        if self._poller is None or self._socket is None:
            return False
        if self._socket.fileno() < 0:
            return True
        if readable is not None:
            return readable
        return bool(self._poller.poll(0))  # readable, hung up or failed

    def expect_head_by(self, deadlines: H1Deadlines, deadline: float) -> None:
        """Bound the coming exchange, until :meth:`head_wait_over`, by ``deadline``: the
        first time it would wait for the network (to send, or for the answer), ``deadlines``
        starts watching it (and closes the connection at ``deadline``, which makes the
        exchange fail). An exchange that never waits costs no heap entry."""
        self._head_deadlines = deadlines
        self._head_deadline = deadline
        self._head_watch = None

    def head_wait_over(self) -> bool:
        """End the bound of :meth:`expect_head_by`; True if its deadline closed the
        connection."""
        deadlines, watch = self._head_deadlines, self._head_watch
        self._head_deadlines = self._head_watch = None
        if deadlines is None or watch is None:
            return False
        deadlines.finished(watch)
        return watch.expired

    def _may_wait(self) -> None:
        """Called before any wait for the network (see :meth:`expect_head_by`)."""
        deadlines = self._head_deadlines
        if deadlines is not None and self._head_watch is None:
            self._head_watch = deadlines.watch(self.stream, self._head_deadline)

    async def send_request(self, req: UpstreamRequest) -> None:
        """Send the request head and stream its body (chunked unless the engine gave a
        length). Blocks as the TCP send buffer fills: backpressure from the backend."""
        if self.requests_done and (not self.reusable or self._buffer):
            raise self._error("the previous exchange did not finish cleanly")
        self._headers_received = self._sent_all = self._received_all = self._counted = False
        self._answer_due = True
        head, length = self._head(req)
        self._method = req.method
        if req.body is None:
            if length:
                raise self._error("sending failed: Too little data for declared Content-Length")
            rest = self._write_now(head)
            if rest:  # no checkpoint otherwise: reading the answer begins with one
                await self._send_rest(rest)
            self._sent_all = True
            return
        await self._write(head)
        if self._nursery is None:
            try:
                await self._send_body(req.body, length)
            except h1wire.WireError as err:
                raise self._error(f"sending failed: {err}") from err
            self._sent_all = True
            return
        self._sending = trio.CancelScope()
        self._sender_left = trio.Event()
        self._body_failure = None
        self._nursery.start_soon(self._send_concurrently, req.body, length, self._sending)

    def _head(self, req: UpstreamRequest) -> tuple[bytes, int | None]:
        """The serialized head (``host`` and chunked framing added when missing) and the
        body framing; notes a ``connection: close`` of ours."""
        try:
            head, length, closes = h1wire.request_head_for(
                req.method, req.path, req.headers, req.authority, req.body is not None
            )
        except h1wire.WireError as err:
            raise self._error(f"sending failed: {err}") from err
        if closes:
            self._keep_alive = False
        return head, length

    async def _send_body(self, body: AsyncIterator[bytes], length: int | None) -> None:
        """Raises :class:`h1wire.WireError` when the body does not match its framing."""
        sent = 0
        async for chunk in body:
            if not chunk:
                continue
            sent += len(chunk)
            if length is None:
                await self._write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            elif sent > length:
                raise h1wire.WireError("Too much data for declared Content-Length")
            else:
                await self._write(chunk)
        if length is None:
            await self._write(b"0\r\n\r\n")
        elif sent < length:
            raise h1wire.WireError("Too little data for declared Content-Length")

    async def _send_concurrently(
        self, body: AsyncIterator[bytes], length: int | None, scope: trio.CancelScope
    ) -> None:
        """The sender task (in the pool's nursery). Never raises: a network error only stops
        the upload (the backend may still answer, e.g. 413 then close); a body that breaks
        its framing, or whose source fails (the client left), aborts the connection so the
        reader wakes up and raises that failure in the requesting task."""
        try:
            with scope:
                await self._send_body(body, length)
                self._sent_all = True  # no checkpoint between the last write and this
        except UpstreamError:
            self._keep_alive = False
        except h1wire.WireError as err:
            await self._abort(self._error(f"sending failed: {err}"))
        except Exception as err:
            await self._abort(err)
        finally:
            self._sender_left.set()

    async def _abort(self, failure: BaseException) -> None:
        self._body_failure = failure
        self._keep_alive = False
        await trio.aclose_forcefully(self.stream)

    @property
    def uploading(self) -> bool:
        """A request body is being sent concurrently (:meth:`stop_sending` has work)."""
        return self._sending is not None

    async def stop_sending(self) -> None:
        """Stop a concurrent upload (if any) and wait until its task left: after this the
        request body is no longer pulled. Cancel-safe; returns promptly."""
        if self._sending is not None:
            self._sending.cancel()
            with trio.CancelScope(shield=True):
                await self._sender_left.wait()
            self._sending = None

    async def receive_response(self) -> tuple[int, Headers]:
        """Wait for the final response head (1xx are skipped)."""
        while True:
            try:
                parsed = h1wire.parse_response(self._buffer, self._method)
            except h1wire.WireError as err:
                raise self._error(f"receiving failed: {err}") from err
            if parsed is None:
                if not await self._fill():
                    raise self._error("the backend closed the connection")
                continue
            status, headers, consumed, remaining, closes = parsed
            del self._buffer[:consumed]
            if status < 200:
                if status == 101:
                    raise self._error("unexpected protocol switch before the response")
                continue
            self._remaining = remaining
            if closes:
                self._keep_alive = False
            self._chunk_left = 0
            self._headers_received = True
            return status, headers

    async def aclose(self) -> None:
        await self.stop_sending()
        await trio.aclose_forcefully(self.stream)

    async def _write(self, data: bytes) -> None:
        rest = self._write_now(data)
        if rest:
            await self._send_rest(rest)
        else:
            await trio.lowlevel.checkpoint_if_cancelled()

    def _write_now(self, data: bytes) -> bytes:
        """On a socket, what the kernel takes right away, without trio's wrappers (~3 µs per
        call); returns the rest (all of ``data`` on another stream)."""
        sock = self._socket
        fd = -1 if sock is None else sock.fileno()
        if fd < 0:
            return data
        try:
            sent = os.write(fd, data)
        except BlockingIOError:
            return data
        except OSError as err:
            raise self._error(f"sending failed: {err!r}") from err
        return data[sent:] if sent < len(data) else b""

    async def _send_rest(self, data: bytes) -> None:
        """What :meth:`_write_now` left (a full send buffer, or not a socket)."""
        try:
            self._may_wait()
            await self.stream.send_all(data)
        except _IO_ERRORS as err:
            raise self._error(f"sending failed: {err!r}") from err

    async def _fill(self) -> bool:
        """Read more into the buffer; False at EOF.

        On a socket: the first read after a request is sent yields once to the scheduler
        and then tries the socket (the other requests of the batch go out meanwhile and the
        backend answers on its CPU: the answer is usually there, and waiting for it through
        trio cost an ``epoll_ctl`` per request); otherwise, and when that read finds
        nothing, wait until readable, then read (trio's ``receive_some`` first tries a read
        that fails when the answer is not there yet)."""
        if self._eof:
            return False
        sock = self._socket
        try:
            if sock is None:
                self._may_wait()
                data: bytes | bytearray | None = await self.stream.receive_some(self._read_size)
            elif self._answer_due:
                self._answer_due = False
                await trio.lowlevel.checkpoint()
                data = self._read_now(sock)
                if data is None:  # not there yet: wait for it
                    data = await self._wait_and_read(sock)
            else:
                data = await self._wait_and_read(sock)
        except _IO_ERRORS as err:
            if self._body_failure is not None:
                raise self._body_failure from err
            raise self._error(f"receiving failed: {err!r}") from err
        if not data:
            self._eof = True
            self._keep_alive = False
            return False
        self._buffer += data
        return True

    def _read_now(self, sock: trio.socket.SocketType) -> bytes | None:
        """A read of what the socket holds; ``None``: nothing yet."""
        fd = sock.fileno()
        if fd < 0:
            raise trio.ClosedResourceError("the connection was closed")
        try:
            return os.read(fd, self._read_size)
        except BlockingIOError:
            return None

    async def _wait_and_read(self, sock: trio.socket.SocketType) -> bytes | bytearray:
        self._may_wait()
        await trio.lowlevel.wait_readable(sock)
        data = self._read_now(sock)
        if data is None:  # a spurious wake-up
            return await self.stream.receive_some(self._read_size)
        return data

    def _error(self, reason: str) -> UpstreamError:
        self._keep_alive = False
        msg = f"{self._label}: {reason}"
        if self._headers_received:
            return UpstreamStreamBroken(msg + " after response headers", endpoint=self._key)
        return ResetBeforeHeaders(msg + " before response headers", endpoint=self._key)


class H1Body:
    """Async iterator over a response body; calls ``done(reusable)`` exactly once."""

    def __init__(self, conn: H1Connection, done: DoneCallback) -> None:
        self._conn = conn
        self._done: DoneCallback | None = done

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    @property
    def at_end(self) -> bool:
        """The chunk just returned was the last (a length-framed body is complete): the
        consumer may stop iterating, ``finish``/``aclose`` then releases the connection for
        reuse, and an HTTP/2 client gets END_STREAM with that chunk (no empty frame after)."""
        return self._done is not None and self._conn.body_complete

    async def __anext__(self) -> bytes:
        if self._done is None:
            raise StopAsyncIteration
        chunk = self._conn.buffered_chunk()
        if chunk is not None:
            return chunk
        try:
            chunk = await self._conn.read_chunk()
        except BaseException:
            await self.finish(reusable=False)
            raise
        if chunk is None:
            if self._conn.uploading:  # the response is complete: no more upload
                await self._conn.stop_sending()
            await self.finish(reusable=self._conn.reusable)
            raise StopAsyncIteration
        return chunk

    @property
    def buffered_to_end(self) -> bool:
        """The rest of the body is already received: iterating it never waits for the
        backend (the engine then relays it without a timeout scope)."""
        return self._done is None or self._conn.body_buffered

    async def finish(self, *, reusable: bool) -> None:
        """Release the connection. ``reusable=False`` (the response's ``aclose``: stopped
        early) is overridden when the body was in fact read to its end."""
        done, self._done = self._done, None
        if done is None:
            return
        conn = self._conn
        if conn.body_complete:
            conn._finish()
            if conn.uploading:
                await conn.stop_sending()
            reusable = conn.reusable
        await done(reusable)
