"""The upstream pools: one pool per endpoint, owned by a nursery (skeleton, being filled in)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager

import trio

from proxy.routes.table import Endpoint
from proxy.upstream.models import PoolSettings, UpstreamRequest, UpstreamResponse

ClientContextFor = Callable[[Endpoint], ssl.SSLContext]
VerifyPeer = Callable[[Endpoint, ssl.SSLObject], None]
DEFAULT_SETTINGS = PoolSettings()


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

    async def request(
        self, endpoint: Endpoint, req: UpstreamRequest, *, timeout_s: float | None = None
    ) -> UpstreamResponse:
        """Send ``req`` to ``endpoint``; return once response headers arrived.

        Raises :class:`~proxy.errors.ConnectFailure`, :class:`~proxy.errors.ResetBeforeHeaders`,
        :class:`~proxy.errors.GoawayReceived`, or :class:`~proxy.errors.UpstreamTimeout` when no
        headers arrived within ``timeout_s``. Cancellation resets the stream. The caller owns
        the returned response and must consume its body or ``aclose()`` it.
        """
        raise NotImplementedError

    async def open_tunnel(self, endpoint: Endpoint, authority: str) -> trio.abc.HalfCloseableStream:
        """A byte stream to ``authority`` (``host:port``).

        Peer: an HTTP/2 CONNECT stream on the peer connection (RFC 9113 §8.5), whose
        send/receive map to DATA frames within the flow-control windows; ``send_eof`` ends our
        side. Local endpoints: a plain TCP connection to ``endpoint.host:endpoint.port``
        (``authority`` is then informational). The caller owns and closes the stream.
        Raises :class:`~proxy.errors.ConnectFailure` or :class:`~proxy.errors.ResetBeforeHeaders`
        (including a non-2xx answer to CONNECT).
        """
        raise NotImplementedError

    async def probe(self, endpoint: Endpoint, path: bytes = b"/readyz") -> bool:
        """``GET path`` (``:authority`` = ``settings.probe_authority``) over the endpoint's
        existing connection (opened if needed); True iff 200 within ``probe_timeout_s``.
        Never raises for upstream failures."""
        raise NotImplementedError

    def retain(self, endpoints: Iterable[Endpoint]) -> None:
        """On a table swap: pools of endpoints not in ``endpoints`` drain gracefully (in-flight
        streams finish, then their connections close). Does not block."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Close every connection now (in-flight streams fail). Idempotent."""
        raise NotImplementedError


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
        try:
            yield pools
        finally:
            await pools.aclose()
            nursery.cancel_scope.cancel()
