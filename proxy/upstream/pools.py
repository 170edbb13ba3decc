"""The upstream pools: one :class:`EndpointPool` per endpoint, all owned by one nursery."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import trio

from proxy.errors import ConnectFailure, TunnelRefused, UpstreamError, UpstreamTimeout
from proxy.routes.table import Endpoint
from proxy.upstream.endpoint_pool import EndpointPool
from proxy.upstream.exchange import Retry, h1_exchange, h1_exchange_on, h2_exchange
from proxy.upstream.h1deadlines import H1Deadlines
from proxy.upstream.h2conn import H2ClientConnection
from proxy.upstream.models import PoolSettings, UpstreamRequest, UpstreamResponse
from proxy.upstream.network import (
    ClientContextFor,
    VerifyPeer,
    connect_tcp,
    describe,
    open_peer_stream,
)
from proxy.upstream.slot import Slot
from proxy.upstream.tunnel import H2TunnelStream

DEFAULT_SETTINGS = PoolSettings()
PoolKey = tuple[str, str, int, str, str | None]

__all__ = ["ClientContextFor", "UpstreamPools", "VerifyPeer", "open_upstream_pools"]


def _pool_key(endpoint: Endpoint) -> PoolKey:
    # Locality and weight may change on reload without touching connections.
    return (endpoint.key, endpoint.host, endpoint.port, endpoint.kind, endpoint.expected_identity)


class UpstreamPools:
    """Connections to every upstream endpoint, keyed by endpoint identity.

    Peers (``kind="peer"``) get up to ``settings.peer_connections`` long-lived multiplexed
    HTTP/2 connections over mTLS; ``h2c`` backends get multiplexed plain HTTP/2; ``http1``
    backends get a keep-alive pool. ``client_context_for(endpoint)`` gives the TLS client
    context (TLS 1.3, ALPN h2, our SVID); ``verify_peer(endpoint, ssl_object)`` runs right after
    the handshake and raises if the peer is not ``endpoint.expected_identity`` -> the connection
    is closed and :class:`~proxy.errors.ConnectFailure` raised, before any request is sent.
    Build it with :func:`open_upstream_pools`; the nursery there owns every connection task.
    """

    def __init__(
        self,
        *,
        client_context_for: ClientContextFor,
        verify_peer: VerifyPeer,
        settings: PoolSettings = DEFAULT_SETTINGS,
        nursery: trio.Nursery,
    ) -> None:
        self._client_context_for = client_context_for
        self._verify_peer = verify_peer
        self._settings = settings
        self._nursery = nursery
        self._h1_deadlines = H1Deadlines(nursery)
        self._pools: dict[PoolKey, EndpointPool] = {}
        self._retired: list[EndpointPool] = []
        self._closed = False
        self._last: tuple[Endpoint, EndpointPool] | None = None  # see _pool

    def _pool(self, endpoint: Endpoint) -> EndpointPool:
        """The pool of ``endpoint``; the same endpoint object as last time (a table's
        endpoints are kept until it is swapped) skips building and hashing its key."""
        last = self._last
        if last is not None and last[0] is endpoint:
            return last[1]
        if self._closed:
            raise ConnectFailure("the upstream pools are closed", endpoint=endpoint.key)
        key = _pool_key(endpoint)
        pool = self._pools.get(key)
        if pool is None:
            pool = EndpointPool(
                endpoint,
                settings=self._settings,
                open_stream=self._open_stream,
                nursery=self._nursery,
            )
            self._pools[key] = pool
        self._last = (endpoint, pool)
        return pool

    async def _open_stream(self, endpoint: Endpoint) -> trio.abc.Stream:
        timeout_s = self._settings.connect_timeout_s
        if endpoint.kind == "peer":
            return await open_peer_stream(
                endpoint,
                client_context_for=self._client_context_for,
                verify_peer=self._verify_peer,
                timeout_s=timeout_s,
            )
        return await connect_tcp(endpoint, timeout_s)

    async def request(
        self,
        endpoint: Endpoint,
        req: UpstreamRequest,
        *,
        timeout_s: float | None = None,
        now: float | None = None,
    ) -> UpstreamResponse:
        """Send ``req`` to ``endpoint``; return once response headers arrived.

        Raises :class:`~proxy.errors.ConnectFailure`, :class:`~proxy.errors.ResetBeforeHeaders`,
        :class:`~proxy.errors.GoawayReceived`, or :class:`~proxy.errors.UpstreamTimeout` when no
        headers arrived within ``timeout_s``. Cancellation resets the stream. The caller owns
        the returned response and must consume its body or ``aclose()`` it. ``now``: the
        trio clock if the caller just read it (no checkpoint since), saving a clock read.
        """
        pool = self._pool(endpoint)
        if timeout_s is None:
            return await self._exchange(pool, req)
        slot = pool.try_acquire()
        response: UpstreamResponse | None = None
        if slot is not None:
            # The common case: a timer (the connection's, or the HTTP/1.1 deadlines') bounds
            # the wait for headers; no cancel scope.
            deadline = (trio.current_time() if now is None else now) + timeout_s
            if pool.multiplexed:
                response = await h2_exchange(pool, req, slot=slot, deadline=deadline)
            else:
                first = await h1_exchange_on(pool, req, slot, self._h1_deadlines, deadline)
                if not isinstance(first, Retry):
                    response = first
                else:
                    with trio.move_on_at(deadline):
                        response = await h1_exchange(pool, req, retried=first is Retry.RESET)
        else:
            with trio.move_on_after(timeout_s):
                response = await self._exchange(pool, req)
        if response is None:
            msg = f"{describe(endpoint)} sent no response headers within {timeout_s} s"
            raise UpstreamTimeout(msg, endpoint=endpoint.key)
        return response

    @staticmethod
    async def _exchange(pool: EndpointPool, req: UpstreamRequest) -> UpstreamResponse:
        if not pool.multiplexed:
            return await h1_exchange(pool, req)
        response = await h2_exchange(pool, req)
        assert response is not None  # no deadline given
        return response

    async def open_tunnel(self, endpoint: Endpoint, authority: str) -> trio.abc.HalfCloseableStream:
        """A byte stream to ``authority`` (``host:port``).

        Peer: an HTTP/2 CONNECT stream on the peer connection (RFC 9113 §8.5), whose
        send/receive map to DATA frames within the flow-control windows; ``send_eof`` ends our
        side. Local endpoints: a plain TCP connection to ``endpoint.host:endpoint.port``
        (``authority`` is then informational). The caller owns and closes the stream.
        Raises :class:`~proxy.errors.ConnectFailure`, :class:`~proxy.errors.ResetBeforeHeaders`
        or :class:`~proxy.errors.TunnelRefused` (a non-2xx answer to CONNECT).
        """
        if endpoint.kind != "peer":
            return await connect_tcp(endpoint, self._settings.connect_timeout_s)
        pool = self._pool(endpoint)
        slot = await pool.acquire()
        conn = _h2(slot)
        connect = UpstreamRequest(b"CONNECT", b"", authority.encode("ascii"), b"", [])
        try:
            stream = conn.start_request(connect, connect=True)
        except BaseException:
            pool.unreserve(slot)
            raise
        slot.reserved -= 1  # the reservation became a stream: capacity unchanged
        try:
            await conn.wait_headers(stream)
        except BaseException:
            conn.release(stream)
            raise
        if not 200 <= stream.status < 300:
            conn.release(stream)
            msg = f"{describe(endpoint)} refused CONNECT {authority} with {stream.status}"
            raise TunnelRefused(msg, endpoint=endpoint.key, status=stream.status)
        return H2TunnelStream(conn, stream)

    async def probe(self, endpoint: Endpoint, path: bytes = b"/readyz") -> bool:
        """``GET path`` (``:authority`` = ``settings.probe_authority``) over the endpoint's
        existing connection (opened if needed); True iff 200 within ``probe_timeout_s``.
        Never raises for upstream failures."""
        scheme = b"https" if endpoint.kind == "peer" else b"http"
        req = UpstreamRequest(b"GET", scheme, self._settings.probe_authority, path, [])
        with trio.move_on_after(self._settings.probe_timeout_s):
            try:
                response = await self.request(endpoint, req)
            except UpstreamError:
                return False
            try:
                async for _ in response.body:
                    pass
            except UpstreamError:
                return False
            finally:
                await response.aclose()
            return response.status == 200
        return False

    def retain(self, endpoints: Iterable[Endpoint]) -> None:
        """On a table swap: pools of endpoints not in ``endpoints`` drain gracefully (in-flight
        streams finish, then their connections close). Does not block."""
        self._last = None
        keep = {_pool_key(e) for e in endpoints}
        for key in [k for k in self._pools if k not in keep]:
            pool = self._pools.pop(key)
            pool.retire()
            self._retired.append(pool)
        self._retired = [p for p in self._retired if not p.empty]

    def connection_count(self, endpoint: Endpoint) -> int:
        """Open or opening connections to ``endpoint`` (for metrics and tests)."""
        pool = self._pools.get(_pool_key(endpoint))
        return 0 if pool is None else len(pool.views())

    async def reap_idle(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Close idle connections every ``reap_interval_s`` (runs until cancelled)."""
        task_status.started()
        while True:
            await trio.sleep(self._settings.reap_interval_s)
            now = trio.current_time()
            for pool in [*self._pools.values(), *self._retired]:
                pool.reap(now)
            self._retired = [p for p in self._retired if not p.empty]

    async def aclose(self) -> None:
        """Close every connection now (in-flight streams fail). Idempotent."""
        self._closed = True
        self._last = None
        for pool in [*self._pools.values(), *self._retired]:
            pool.abort()
        self._pools.clear()
        self._retired.clear()
        await trio.lowlevel.checkpoint()


def _h2(slot: Slot) -> H2ClientConnection:
    assert isinstance(slot.conn, H2ClientConnection)
    return slot.conn


@asynccontextmanager
async def open_upstream_pools(
    *,
    client_context_for: ClientContextFor,
    verify_peer: VerifyPeer,
    settings: PoolSettings = DEFAULT_SETTINGS,
) -> AsyncIterator[UpstreamPools]:
    """``async with open_upstream_pools(...) as pools:`` — connection tasks live in a nursery
    owned here; leaving the block closes every connection."""
    async with trio.open_nursery() as nursery:
        pools = UpstreamPools(
            client_context_for=client_context_for,
            verify_peer=verify_peer,
            settings=settings,
            nursery=nursery,
        )
        await nursery.start(pools.reap_idle)
        try:
            yield pools
        finally:
            await pools.aclose()
            nursery.cancel_scope.cancel()
