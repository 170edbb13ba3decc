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
    check_once,
    run_health_checks,
)
from proxy.errors import ProxyError
from proxy.listeners import (
    Downstream,
    DownstreamGone,
    DrainSignal,
    Exchange,
    ListenerLimits,
    PeerIdentity,
    RequestHandler,
    open_listening_socket,
    serve_listener,
)
from proxy.runtime import tune_gc
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
    "PeerIdentity",
    "ProxyError",
    "RequestHandler",
    "RequestRecord",
    "TLSHandshakeError",
    "TLSStream",
    "TunnelRecord",
    "UpstreamEvent",
    "check_once",
    "open_listening_socket",
    "open_tls_stream",
    "run_health_checks",
    "serve_listener",
    "tune_gc",
]
