"""Pure translation of the federation's :class:`RoutingModel` into the proxy's
:class:`RoutingTable`.

Rules (docs/gateway.md, "Failover semantics"):

- every priority level of a service becomes one :class:`PriorityGroup`, in order;
- the gateway's own cluster in a level expands to the service's local endpoints, the cluster's
  weight split between them in proportion to their own weights;
- a peer cluster expands to that peer's gateway address(es) as ``kind="peer"`` endpoints carrying
  the SPIFFE ID the peer must present (``expected_identity``), the weight split evenly;
- a cluster named again in a later level is ignored there (it is already preferred);
- a weight of 0 keeps a cluster out of that level (drained);
- a peer's ``cluster_health`` (share of its backends up, as the federation saw it) becomes the
  ``health`` of its endpoints, so the balancer spills to the next level as it drops;
- a service without priorities but with local endpoints gets one level: its local endpoints;
- a TCP-only service (``tcp_endpoints`` but no ``local_endpoints``) uses its TCP targets as its
  local endpoints, so CONNECT has a local destination to pick;
- endpoint keys are stable across reloads (``local:<addr>``, ``peer:<cluster>:<addr>``), so
  pools and outlier state survive a reload for endpoints that did not change.

Integer weights are scaled by the least common denominator so shares stay exact.
"""

from __future__ import annotations

import math
from fractions import Fraction

from federation.model import LocalEndpoint, PeerGateway, RoutingModel, ServiceRoute
from proxy.routes import (
    Endpoint,
    FaultSettings,
    Locality,
    PriorityGroup,
    RetrySettings,
    Route,
    RoutingTable,
)


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` / ``[v6]:port`` -> ``(host, port)`` (brackets removed)."""
    host, _, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def local_endpoint_key(address: str) -> str:
    return f"local:{address}"


def peer_endpoint_key(cluster: str, address: str) -> str:
    return f"peer:{cluster}:{address}"


def _local_endpoints(svc: ServiceRoute, share: Fraction) -> list[tuple[Fraction, LocalEndpoint]]:
    # A TCP-only service (CONNECT targets, no HTTP backends) still needs a local destination
    # for the balancer to pick: its tcp_endpoints stand in (the tunnel connects to the
    # tcp_targets entry with the requested port anyway).
    backends = svc.local_endpoints or tuple(
        LocalEndpoint(address=address) for address in svc.tcp_endpoints
    )
    if not backends:
        return []
    total = sum(ep.weight for ep in backends)
    return [(share * ep.weight / total, ep) for ep in backends]


def _local(model: RoutingModel, ep: LocalEndpoint, weight: int) -> Endpoint:
    host, port = split_address(ep.address)
    loc = model.locality
    return Endpoint(
        key=local_endpoint_key(ep.address),
        host=host,
        port=port,
        kind=ep.protocol,
        locality=Locality(model.cluster, loc.cloud, loc.region, ep.zone or loc.zone),
        weight=weight,
    )


def _peer(peer: PeerGateway, address: str, weight: int, health: float = 1.0) -> Endpoint:
    host, port = split_address(address)
    loc = peer.locality
    return Endpoint(
        key=peer_endpoint_key(peer.cluster, address),
        host=host,
        port=port,
        kind="peer",
        locality=Locality(peer.cluster, loc.cloud, loc.region, loc.zone),
        weight=weight,
        expected_identity=peer.spiffe_id,
        health=health,
    )


def _scale(shares: list[Fraction]) -> list[int]:
    """Exact integer weights proportional to ``shares`` (all positive)."""
    lcd = math.lcm(*(share.denominator for share in shares))
    ints = [int(share * lcd) for share in shares]
    common = math.gcd(*ints)
    return [value // common for value in ints]


def _group(
    model: RoutingModel, svc: ServiceRoute, weights: dict[str, int], seen: set[str]
) -> PriorityGroup | None:
    peers = {peer.cluster: peer for peer in model.peers}
    pending: list[tuple[Fraction, LocalEndpoint | tuple[PeerGateway, str]]] = []
    for cluster, weight in weights.items():
        if weight <= 0 or cluster in seen:
            continue
        seen.add(cluster)
        if cluster == model.cluster:
            pending.extend(_local_endpoints(svc, Fraction(weight)))
            continue
        peer = peers[cluster]
        each = Fraction(weight, len(peer.addresses))
        pending.extend((each, (peer, address)) for address in peer.addresses)
    if not pending:
        return None
    endpoints = []
    for weight, (_, target) in zip(_scale([s for s, _ in pending]), pending, strict=True):
        if isinstance(target, LocalEndpoint):
            endpoints.append(_local(model, target, weight))
        else:
            health = svc.cluster_health.get(target[0].cluster, 1.0)
            endpoints.append(_peer(target[0], target[1], weight, health))
    return PriorityGroup(tuple(endpoints))


def translate_service(model: RoutingModel, svc: ServiceRoute) -> Route:
    """One service's :class:`Route`; see the module docstring for the rules."""
    levels = [prio.weights for prio in svc.priorities]
    if not levels and (svc.local_endpoints or svc.tcp_endpoints):
        levels = [{model.cluster: 1}]
    seen: set[str] = set()
    groups = [group for w in levels if (group := _group(model, svc, w, seen)) is not None]
    fault = None
    if svc.fault is not None:
        fault = FaultSettings(
            delay_s=svc.fault.delay_ms / 1000.0,
            delay_percent=svc.fault.delay_percent,
            abort_status=svc.fault.abort_status,
            abort_percent=svc.fault.abort_percent,
        )
    retry = svc.retry
    return Route(
        service=svc.name,
        priorities=tuple(groups),
        tcp_targets=tuple(split_address(addr) for addr in svc.tcp_endpoints),
        retry=RetrySettings(
            attempts=retry.attempts,
            per_try_timeout_s=retry.per_try_timeout_s,
            budget_percent=retry.budget_percent,
            min_retry_concurrency=retry.min_retry_concurrency,
            retry_non_idempotent=retry.retry_non_idempotent,
        ),
        fault=fault,
        timeout_s=svc.timeout_s,
        allowed_sources=frozenset(svc.allowed_sources),
    )


def translate_model(model: RoutingModel) -> RoutingTable:
    """The whole table. Pure and deterministic: the same model gives an equal table."""
    return RoutingTable(
        version=model.version,
        local_cluster=model.cluster,
        routes={svc.name: translate_service(model, svc) for svc in model.services},
        domain_suffix=model.domain_suffix,
    )
