"""The generic data-plane engine: protocol sessions, listeners, routes, clusters, load
balancing, connection pools, outlier detection, retries, fault injection and tunnels.

Imports nothing of Isthmus's own: the gateway translates its routing model into these types.
"""

from proxy.engine import (
    ForwardingEngine,
    NullObserver,
    Observer,
    RequestRecord,
    TunnelRecord,
    UpstreamEvent,
)
from proxy.errors import ProxyError
from proxy.listeners import (
    Downstream,
    DownstreamGone,
    DrainSignal,
    Exchange,
    ListenerLimits,
    serve_listener,
)
from proxy.tls import TLSHandshakeError, TLSStream, open_tls_stream

__all__ = [
    "Downstream",
    "DownstreamGone",
    "DrainSignal",
    "Exchange",
    "ForwardingEngine",
    "ListenerLimits",
    "NullObserver",
    "Observer",
    "ProxyError",
    "RequestRecord",
    "TLSHandshakeError",
    "TLSStream",
    "TunnelRecord",
    "UpstreamEvent",
    "open_tls_stream",
    "serve_listener",
]
