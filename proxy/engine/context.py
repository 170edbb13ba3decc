"""Per-table derived data and per-request bookkeeping of the forwarding engine."""

from __future__ import annotations

from dataclasses import dataclass

from proxy.routes.table import PriorityGroup, Route, RoutingTable


def local_only(route: Route) -> Route:
    """The route as the inbound listener may use it: only endpoints of this cluster
    (``kind != "peer"``), so a request from a peer gateway is never forwarded to another
    peer (no loops, no transit)."""
    groups = tuple(
        PriorityGroup(tuple(ep for ep in group.endpoints if ep.kind != "peer"))
        for group in route.priorities
    )
    return Route(
        service=route.service,
        priorities=tuple(g for g in groups if g.endpoints),
        tcp_targets=route.tcp_targets,
        retry=route.retry,
        fault=route.fault,
        timeout_s=route.timeout_s,
        allowed_sources=route.allowed_sources,
    )


_CACHE_LIMIT = 4096
Match = tuple[str | None, Route | None]


class TableView:
    """A routing table plus its inbound (local-only) routes, computed once per swap, and a
    bounded cache of the authorities seen (a request's lookup is then one dict hit)."""

    __slots__ = ("_seen", "inbound", "table")

    def __init__(self, table: RoutingTable) -> None:
        self.table = table
        self.inbound = {name: local_only(route) for name, route in table.routes.items()}
        self._seen: dict[tuple[bytes, bool], Match] = {}

    def match_raw(self, authority: bytes, *, inbound: bool) -> Match:
        """:meth:`match` for the authority as it came off the wire (latin-1)."""
        key = (authority, inbound)
        found = self._seen.get(key)
        if found is None:
            found = self.match(authority.decode("latin-1"), inbound=inbound)
            if len(self._seen) >= _CACHE_LIMIT:
                self._seen.clear()  # many distinct authorities: start over, stay bounded
            self._seen[key] = found
        return found

    def match(self, authority: str, *, inbound: bool) -> Match:
        """``(service name or None, route or None)`` for an authority."""
        service = self.table.service_for(authority)
        if service is None:
            return None, None
        routes = self.inbound if inbound else self.table.routes
        return service, routes.get(service)


@dataclass(slots=True)
class Outcome:
    """What happened to one exchange, for the observer."""

    status: int = 0
    reason: str = ""
    service: str = ""
    destination_cluster: str = ""
    endpoint: str = ""
    retries: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    trace_id: str = ""
