"""Tunnels: the byte pump and the TCP targets CONNECT reaches (the engine's CONNECT handling
lives in :mod:`proxy.engine.tunnels`)."""

from proxy.tunnel.pump import PUMP_BUFFER, PumpCounts, TunnelIdleTimeout, pump
from proxy.tunnel.targets import TunnelTargetMissing, tcp_target

__all__ = [
    "PUMP_BUFFER",
    "PumpCounts",
    "TunnelIdleTimeout",
    "TunnelTargetMissing",
    "pump",
    "tcp_target",
]
