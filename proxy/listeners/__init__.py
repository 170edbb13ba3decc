"""Listeners: accept loops with per-listener limits, protocol detection and graceful drain."""

from proxy.listeners.exchange import (
    Downstream,
    DownstreamGone,
    Exchange,
    ListenerKind,
    PeerIdentity,
    RequestHandler,
)
from proxy.listeners.limits import DrainSignal, ListenerLimits
from proxy.listeners.serve import VerifyPeer, open_listening_socket, serve_listener

__all__ = [
    "Downstream",
    "DownstreamGone",
    "DrainSignal",
    "Exchange",
    "ListenerKind",
    "ListenerLimits",
    "PeerIdentity",
    "RequestHandler",
    "VerifyPeer",
    "open_listening_socket",
    "serve_listener",
]
