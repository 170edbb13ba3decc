"""The forwarding engine: route, police, fault-inject, balance, forward, retry, relay."""

from proxy.engine.body import DEFAULT_REPLAY_LIMIT, ReplayableBody
from proxy.engine.context import local_only
from proxy.engine.engine import ForwardingEngine, UpstreamClient
from proxy.engine.health import check_once, run_health_checks
from proxy.engine.observer import (
    NullObserver,
    Observer,
    RequestRecord,
    TunnelRecord,
    UpstreamEvent,
)

__all__ = [
    "DEFAULT_REPLAY_LIMIT",
    "ForwardingEngine",
    "NullObserver",
    "Observer",
    "ReplayableBody",
    "RequestRecord",
    "TunnelRecord",
    "UpstreamClient",
    "UpstreamEvent",
    "check_once",
    "local_only",
    "run_health_checks",
]
