"""The east-west gateway process: snapshot to routing table, identity, policy, admin API.

Only the errors are imported eagerly: ``isthmus --help`` imports this package for
:class:`GatewayError` and must not pay for trio, hypercorn and the TLS stack. Every other
public name is loaded on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gateway.errors import GatewayConfigError, GatewayError, IdentityError, PeerRejected

if TYPE_CHECKING:
    from gateway.config import GatewayConfig, IdentityPaths, LimitSettings, ListenerSettings
    from gateway.identity import GatewayIdentity, load_identity_files
    from gateway.metrics import GatewayMetrics
    from gateway.observe import GatewayObserver, access_line
    from gateway.reload import RoutingWatcher, load_routing_model
    from gateway.run import RunningGateway, serve_gateway
    from gateway.status import GatewayStatus
    from gateway.translate import translate_model
    from gateway.workers import WorkerCrashLoop, supervise_workers

_LAZY = {
    "GatewayConfig": "gateway.config",
    "IdentityPaths": "gateway.config",
    "LimitSettings": "gateway.config",
    "ListenerSettings": "gateway.config",
    "GatewayIdentity": "gateway.identity",
    "load_identity_files": "gateway.identity",
    "GatewayMetrics": "gateway.metrics",
    "GatewayObserver": "gateway.observe",
    "access_line": "gateway.observe",
    "RoutingWatcher": "gateway.reload",
    "load_routing_model": "gateway.reload",
    "RunningGateway": "gateway.run",
    "serve_gateway": "gateway.run",
    "GatewayStatus": "gateway.status",
    "translate_model": "gateway.translate",
    "WorkerCrashLoop": "gateway.workers",
    "supervise_workers": "gateway.workers",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gateway' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "GatewayConfig",
    "GatewayConfigError",
    "GatewayError",
    "GatewayIdentity",
    "GatewayMetrics",
    "GatewayObserver",
    "GatewayStatus",
    "IdentityError",
    "IdentityPaths",
    "LimitSettings",
    "ListenerSettings",
    "PeerRejected",
    "RoutingWatcher",
    "RunningGateway",
    "WorkerCrashLoop",
    "access_line",
    "load_identity_files",
    "load_routing_model",
    "serve_gateway",
    "supervise_workers",
    "translate_model",
]
