"""Upstream clusters: the per-gateway mutable state behind the immutable routing table."""

from proxy.clusters.state import UpstreamState, route_size

__all__ = ["UpstreamState", "route_size"]
