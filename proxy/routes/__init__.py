"""Routes: the table a request meets first (authority -> service route), plus the per-route
request policies applied on the way: header hygiene and fault injection."""

from proxy.routes.fault import NO_FAULT, FaultDecision, decide_fault
from proxy.routes.headers import (
    HOP_BY_HOP,
    Headers,
    clean_response,
    fault_abort_response,
    from_local_client,
    from_peer_gateway,
    local_reply,
    not_found_response,
    parse_traceparent,
    strip_hop_by_hop,
    unavailable_response,
)
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
    "HOP_BY_HOP",
    "NO_FAULT",
    "Endpoint",
    "FaultDecision",
    "FaultSettings",
    "Headers",
    "Locality",
    "PriorityGroup",
    "RetrySettings",
    "Route",
    "RoutingTable",
    "clean_response",
    "decide_fault",
    "fault_abort_response",
    "from_local_client",
    "from_peer_gateway",
    "local_reply",
    "not_found_response",
    "parse_authority",
    "parse_traceparent",
    "strip_hop_by_hop",
    "unavailable_response",
]
