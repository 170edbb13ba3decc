"""One request/response exchange on a pooled connection (HTTP/2 stream or HTTP/1.1 turn)."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from functools import partial

from proxy.errors import ResetBeforeHeaders
from proxy.protocol.h2core import H2StateError
from proxy.upstream.endpoint_pool import EndpointPool
from proxy.upstream.h1conn import H1Body, H1Connection
from proxy.upstream.h1deadlines import H1Deadlines
from proxy.upstream.h2conn import H2ClientConnection
from proxy.upstream.h2stream import H2Stream
from proxy.upstream.models import Headers, UpstreamRequest, UpstreamResponse
from proxy.upstream.slot import Slot


class H2Body:
    """Response body of one HTTP/2 stream; releases the stream at its end, on error, or on
    ``aclose`` (which resets an unfinished stream). Taking a chunk returns its credit."""

    def __init__(self, conn: H2ClientConnection, stream: H2Stream, trailers: Headers) -> None:
        self._conn = conn
        self._stream = stream
        self._done = False
        # The response's trailers list, filled at the end. Not the response itself: the
        # response holds this body, and that cycle left every request's stream, events and
        # headers to the cyclic GC (a peer-facing gateway then paused 15-25 ms every ~3,000
        # requests, collecting ~50,000 of them at once).
        self._trailers = trailers

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    @property
    def at_end(self) -> bool:
        """The chunk just returned was the last: the stream ended, no data and no trailers
        follow (the consumer may stop iterating; ``aclose`` then releases the stream)."""
        s = self._stream
        return s.ended and not s.inbox and not s.trailers and s.error is None and not self._done

    @property
    def buffered_to_end(self) -> bool:
        """The rest of the body is already received (END_STREAM or an error came): iterating
        it never waits for the upstream (the engine then relays it without a timeout scope)."""
        s = self._stream
        return self._done or s.ended or s.error is not None

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        try:
            chunk = await self._conn.read_chunk(self._stream)
        except BaseException:
            await self.aclose()
            raise
        if chunk is None:
            self._trailers[:] = self._stream.trailers
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        """Cancel-safe (never checkpoints)."""
        if not self._done:
            self._done = True
            self._conn.release(self._stream)


async def h2_exchange(
    pool: EndpointPool,
    req: UpstreamRequest,
    *,
    slot: Slot | None = None,
    deadline: float | None = None,
) -> UpstreamResponse | None:
    """Open a stream on the least-loaded connection (or on ``slot``, already reserved) and
    wait for response headers. With ``deadline``, the connection's timer bounds the wait:
    ``None`` is returned (the stream reset and released) if no headers came by then."""
    if slot is None:
        slot = await pool.acquire()
    conn = slot.conn
    assert isinstance(conn, H2ClientConnection)
    try:
        stream = conn.start_request(req)
    except H2StateError as err:
        pool.unreserve(slot)
        conn.close()  # e.g. stream ids exhausted: let a fresh connection take over
        msg = f"{pool.label}: cannot open a stream ({err!r})"
        raise ResetBeforeHeaders(msg, endpoint=pool.endpoint.key) from err
    except BaseException:
        pool.unreserve(slot)
        raise
    slot.reserved -= 1  # the reservation became a stream: capacity unchanged
    if deadline is not None:
        conn.expect_headers_by(stream, deadline)
    try:
        await conn.wait_headers(stream)
    except BaseException:
        conn.release(stream)
        raise
    if stream.timed_out and not stream.status:
        conn.release(stream)
        return None
    trailers: Headers = []
    body = H2Body(conn, stream, trailers)
    return UpstreamResponse(
        stream.status, stream.headers, body, closer=body.aclose, trailers=trailers
    )


class Retry(enum.Enum):
    """:func:`h1_exchange_on` could not use its connection: go the slow way."""

    STALE = "stale"  # closed by the backend while idle: nothing was sent
    RESET = "reset"  # reset before the head of a body-less request: the one retry is used


async def h1_exchange_on(
    pool: EndpointPool,
    req: UpstreamRequest,
    slot: Slot,
    deadlines: H1Deadlines,
    deadline: float,
) -> UpstreamResponse | Retry | None:
    """The common case of :func:`h1_exchange` under a deadline, without a cancel scope: on
    ``slot`` (an idle connection :meth:`EndpointPool.try_acquire` reserved), the wait for
    the response head bounded by ``deadlines`` (which closes the connection at
    ``deadline``). ``None``: no head by then. A :class:`Retry`: the connection was stale or reset
    before anything could have been processed; the caller retries with :func:`h1_exchange`
    (``retried=True`` after ``RESET``), which may wait for a connection."""
    conn = slot.conn
    assert isinstance(conn, H1Connection)
    if conn.looks_stale(pool.idle_readable(slot)):
        await pool.release_h1(slot, reusable=False)
        return Retry.STALE
    conn.expect_head_by(deadlines, deadline)
    try:
        await conn.send_request(req)
        status, headers = await conn.receive_response()
    except ResetBeforeHeaders:
        expired = conn.head_wait_over()
        await pool.release_h1(slot, reusable=False)
        if expired:
            return None
        if req.body is None:
            return Retry.RESET
        raise
    except BaseException:
        expired = conn.head_wait_over()
        await pool.release_h1(slot, reusable=False)
        if expired:
            return None
        raise
    conn.head_wait_over()
    body = H1Body(conn, partial(pool.release_h1, slot))
    return UpstreamResponse(status, headers, body, partial(body.finish, reusable=False))


async def h1_exchange(
    pool: EndpointPool, req: UpstreamRequest, *, retried: bool = False
) -> UpstreamResponse:
    """One request on a kept-alive (or new) connection. A kept-alive connection the backend
    had closed in the meantime is retried once on a fresh one when nothing of the request
    could have been processed (no body); ``retried``: that retry was already used."""
    for _ in range(pool.limits.max_idle + 2):  # each stale idle connection is skipped once
        slot = await pool.acquire()
        conn = slot.conn
        assert isinstance(conn, H1Connection)
        reused = conn.requests_done > 0
        if reused and conn.looks_stale(pool.idle_readable(slot)):
            await pool.release_h1(slot, reusable=False)
            continue
        try:
            await conn.send_request(req)
            status, headers = await conn.receive_response()
        except ResetBeforeHeaders:
            await pool.release_h1(slot, reusable=False)
            if reused and req.body is None and not retried:
                retried = True
                continue
            raise
        except BaseException:
            await pool.release_h1(slot, reusable=False)
            raise
        body = H1Body(conn, partial(pool.release_h1, slot))
        return UpstreamResponse(status, headers, body, closer=partial(body.finish, reusable=False))
    msg = f"{pool.label}: every kept-alive connection was closed by the backend"
    raise ResetBeforeHeaders(msg, endpoint=pool.endpoint.key)
