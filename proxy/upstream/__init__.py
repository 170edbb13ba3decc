"""Upstream connection pools (httpcore layering): pool -> connection -> protocol -> stream.

Pool decisions are pure (:mod:`proxy.upstream.decisions`); trio does the I/O.
"""

from proxy.upstream.models import PoolSettings, UpstreamRequest, UpstreamResponse
from proxy.upstream.pools import UpstreamPools, open_upstream_pools

__all__ = [
    "PoolSettings",
    "UpstreamPools",
    "UpstreamRequest",
    "UpstreamResponse",
    "open_upstream_pools",
]
