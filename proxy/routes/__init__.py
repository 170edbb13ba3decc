"""Routes: the table a request meets first (authority -> service route)."""

from proxy.routes.table import (
    Endpoint,
    FaultSettings,
    Locality,
    PriorityGroup,
    RetrySettings,
    Route,
    RoutingTable,
    parse_authority,
)

__all__ = [
    "Endpoint",
    "FaultSettings",
    "Locality",
    "PriorityGroup",
    "RetrySettings",
    "Route",
    "RoutingTable",
    "parse_authority",
]
