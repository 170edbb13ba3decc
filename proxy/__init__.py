"""The generic data-plane engine: protocol sessions, listeners, routes, clusters, load
balancing, connection pools, outlier detection, retries, fault injection and tunnels.

Imports nothing of Isthmus's own: the gateway translates its routing model into these types.
"""

from proxy.errors import ProxyError

__all__ = ["ProxyError"]
