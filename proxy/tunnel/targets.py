"""Where a tunnel goes inside this cluster: the route's TCP targets."""

from __future__ import annotations

from proxy.errors import ProxyError
from proxy.routes.table import Route


class TunnelTargetMissing(ProxyError):
    """The route has no ``tcp_targets``: nothing to connect a tunnel to in this cluster."""


def tcp_target(route: Route, target: str) -> tuple[str, int]:
    """The route's TCP target for ``host:port``: the one with that port, else the first.
    Raises :class:`TunnelTargetMissing` when the route has none."""
    if not route.tcp_targets:
        raise TunnelTargetMissing(
            f"service {route.service!r} has no tcp_targets; add one to tunnel to it"
        )
    _, _, port_text = target.rpartition(":")
    port = int(port_text) if port_text.isdigit() else -1
    for host, target_port in route.tcp_targets:
        if target_port == port:
            return host, target_port
    return route.tcp_targets[0]
