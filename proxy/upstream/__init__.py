"""Upstream connection pools (httpcore layering): pool -> connection -> protocol -> stream.

Pool decisions are pure (:mod:`proxy.upstream.decisions`); trio does the I/O. Peers get a few
long-lived multiplexed HTTP/2 mTLS connections, h2c backends multiplexed plain HTTP/2, HTTP/1.1
backends a keep-alive pool. Errors are the :class:`proxy.errors.UpstreamError` family, each
carrying the :class:`proxy.retry.FailureKind` the retry policy acts on.

    async with open_upstream_pools(client_context_for=..., verify_peer=...) as pools:
        response = await pools.request(endpoint, UpstreamRequest(...), timeout_s=2.0)
        async for chunk in response.body: ...
"""

from proxy.upstream.models import PoolSettings, UpstreamRequest, UpstreamResponse
from proxy.upstream.network import ClientContextFor, VerifyPeer
from proxy.upstream.pools import UpstreamPools, open_upstream_pools

__all__ = [
    "ClientContextFor",
    "PoolSettings",
    "UpstreamPools",
    "UpstreamRequest",
    "UpstreamResponse",
    "VerifyPeer",
    "open_upstream_pools",
]
