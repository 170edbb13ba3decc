"""The health report a federated gateway sends every interval (pure).

Per exported service (a service of the routing file with local endpoints or TCP targets): each
endpoint and its health as the proxy sees it right now (outlier ejections and probes, from the
engine's :class:`~proxy.clusters.state.UpstreamState`), the requests in flight to them, and the
load the gateway's observer measured (request rate, error rate, latency EWMA). Per peer gateway:
whether its active ``/readyz`` probes pass (a cluster is reachable when any of its gateway
addresses is). The federation uses the peer view to tell "cluster down" from "link down".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from federation.model import RoutingModel
from federation.model.api import (
    EndpointHealth,
    HealthReport,
    LinkStats,
    PeerProbe,
    ServiceHealth,
)
from gateway.load import LoadSample
from gateway.translate import local_endpoint_key

#: ``healthy(service, endpoint_key)``: the proxy's verdict right now.
HealthView = Callable[[str, str], bool]


def exported_services(model: RoutingModel) -> list[str]:
    """Names of the services this cluster serves itself (local or TCP endpoints)."""
    return [svc.name for svc in model.services if svc.local_endpoints or svc.tcp_endpoints]


def _service(
    model: RoutingModel,
    name: str,
    *,
    healthy: HealthView,
    in_flight: Mapping[str, int],
    load: LoadSample | None,
    capacity: int,
) -> ServiceHealth:
    svc = next(s for s in model.services if s.name == name)
    endpoints = tuple(
        EndpointHealth(
            address=ep.address,
            protocol=ep.protocol,
            healthy=healthy(name, local_endpoint_key(ep.address)),
            weight=ep.weight,
            zone=ep.zone,
        )
        for ep in svc.local_endpoints
    )
    tcp = tuple(
        EndpointHealth(address=address, healthy=healthy(name, local_endpoint_key(address)))
        for address in svc.tcp_endpoints
    )
    keys = {local_endpoint_key(ep.address) for ep in (*endpoints, *tcp)}
    return ServiceHealth(
        name=name,
        endpoints=endpoints,
        tcp_endpoints=tcp,
        timeout_s=svc.timeout_s,
        retry=svc.retry,
        fault=svc.fault,
        allowed_sources=svc.allowed_sources,
        capacity=capacity,
        in_flight=sum(in_flight.get(key, 0) for key in keys),
        request_rate=0.0 if load is None else min(load.request_rate, 1e9),
        latency_ewma_ms=0.0 if load is None else min(load.latency_ewma_ms, 1e7),
        error_rate=0.0 if load is None else min(max(load.error_rate, 0.0), 1.0),
    )


def build_health_report(
    exports: RoutingModel,
    *,
    sequence: int,
    sent_at: float,
    healthy: HealthView,
    in_flight: Mapping[str, int],
    load: Mapping[str, LoadSample],
    peers: Mapping[str, bool],
    capacity: int = 0,
    links: Mapping[str, LoadSample] | None = None,
) -> HealthReport:
    """The report for this interval. ``peers`` maps peer cluster -> probe verdict; clusters
    this gateway has not probed yet are left out (no news is not "down"). ``links`` maps
    ``"<destination cluster>/<service>"`` to the outbound traffic sent there this interval."""
    services = tuple(
        _service(
            exports,
            name,
            healthy=healthy,
            in_flight=in_flight,
            load=load.get(name),
            capacity=capacity,
        )
        for name in exported_services(exports)
    )
    probes = tuple(
        PeerProbe(cluster=cluster, ok=ok)
        for cluster, ok in sorted(peers.items())
        if cluster != exports.cluster
    )
    return HealthReport(
        sequence=sequence,
        sent_at=sent_at,
        services=services,
        peers=probes,
        links=tuple(_link(key, sample) for key, sample in sorted((links or {}).items())),
    )


def _link(key: str, sample: LoadSample) -> LinkStats:
    """``"<destination>/<service>"`` and its load as one :class:`LinkStats`."""
    destination, _, service = key.partition("/")
    return LinkStats(
        destination=destination,
        service=service,
        request_rate=min(sample.request_rate, 1e9),
        error_rate=min(max(sample.error_rate, 0.0), 1.0),
        latency_ms=min(sample.latency_ewma_ms, 1e7),
    )
