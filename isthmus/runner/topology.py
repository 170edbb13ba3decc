"""Generate a local multi-cluster federation on disk: a CA, a gateway SVID, bundles, a
``gateway.yaml`` and a ``routing.yaml`` per cluster.

Used by ``isthmus up`` and by the gateway's integration and end-to-end tests, so both run the
very same files a user gets. Layout under ``root``::

    <cluster>/ca/            the cluster's CA (ca.pem, ca.key 0600, bundle.json)
    <cluster>/svid.pem       the gateway's X.509-SVID (leaf first)
    <cluster>/svid.key       its key (0600)
    <cluster>/gateway.yaml   the gateway config (relative paths)
    <cluster>/routing.yaml   the routing model
    bundles/<td>.json        every cluster's trust bundle (what the federation would relay)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from federation.model import (
    LocalEndpoint,
    Locality,
    PeerGateway,
    PriorityLevel,
    RetryPolicy,
    RoutingModel,
    ServiceRoute,
)
from federation.trust import CertificateAuthority, TrustDomain, gateway_id, issue_x509_svid
from federation.trust.files import PUBLIC_MODE, write_file


@dataclass(frozen=True)
class ClusterSpec:
    """One local cluster: its name, trust domain, where it pretends to run, and its ports."""

    name: str
    cloud: str
    region: str
    inbound_port: int
    outbound_port: int
    admin_port: int
    trust_domain: str = ""

    @property
    def domain(self) -> str:
        return self.trust_domain or f"{self.name}.isthmus.local"


@dataclass(frozen=True)
class ServiceSpec:
    """A global service: backend addresses per cluster and the failover order of clusters.

    ``order`` lists clusters in preference; a cluster's own backends always come first for
    itself (locality), then the others in ``order``. Empty ``order`` = clusters with backends
    in ``backends`` order. ``tcp`` are CONNECT targets per cluster.
    """

    name: str
    backends: dict[str, tuple[str, ...]]
    order: tuple[str, ...] = ()
    tcp: dict[str, tuple[str, ...]] = field(default_factory=dict)
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def _levels(cluster: str, spec: ServiceSpec) -> tuple[PriorityLevel, ...]:
    order = list(spec.order) or list(spec.backends)
    if cluster in spec.backends or cluster in spec.tcp:
        order = [cluster, *(c for c in order if c != cluster)]
    return tuple(PriorityLevel(weights={c: 100}) for c in order)


def routing_model_for(
    cluster: ClusterSpec,
    clusters: Sequence[ClusterSpec],
    services: Sequence[ServiceSpec],
    *,
    version: int = 1,
) -> RoutingModel:
    """The routing model of ``cluster``: every other cluster is a peer, every service listed."""
    peers = tuple(
        PeerGateway(
            cluster=other.name,
            trust_domain=other.domain,
            spiffe_id=str(gateway_id(other.domain, other.name)),
            addresses=(f"127.0.0.1:{other.inbound_port}",),
            locality=Locality(cloud=other.cloud, region=other.region),
        )
        for other in clusters
        if other.name != cluster.name
    )
    routes = tuple(
        ServiceRoute(
            name=spec.name,
            local_endpoints=tuple(
                LocalEndpoint(address=addr) for addr in spec.backends.get(cluster.name, ())
            ),
            tcp_endpoints=spec.tcp.get(cluster.name, ()),
            priorities=_levels(cluster.name, spec),
            allowed_sources=("*",),
            retry=spec.retry,
        )
        for spec in services
    )
    return RoutingModel(
        version=version,
        cluster=cluster.name,
        trust_domain=cluster.domain,
        locality=Locality(cloud=cluster.cloud, region=cluster.region),
        peers=peers,
        services=routes,
    )


def write_routing_file(path: Path, model: RoutingModel) -> None:
    """Write ``model`` as YAML atomically (a reloading gateway never sees half a file)."""
    text = yaml.safe_dump(model.model_dump(mode="json", exclude_defaults=True), sort_keys=False)
    write_file(path, text.encode(), mode=PUBLIC_MODE)


def _gateway_yaml(
    cluster: ClusterSpec,
    clusters: Sequence[ClusterSpec],
    root: Path,
    drain_timeout_s: float | None,
    probe_interval_s: float | None,
) -> str:
    doc: dict[str, Any] = {
        "cluster": cluster.name,
        "trust_domain": cluster.domain,
        "locality": {"cloud": cluster.cloud, "region": cluster.region},
        "listeners": {
            "bind": "127.0.0.1",
            "inbound_port": cluster.inbound_port,
            "outbound_port": cluster.outbound_port,
            "admin_port": cluster.admin_port,
        },
        "identity": {
            "svid": "svid.pem",
            "key": "svid.key",
            "bundles": {c.domain: str(root / "bundles" / f"{c.domain}.json") for c in clusters},
        },
        "routing_file": "routing.yaml",
    }
    if drain_timeout_s is not None:
        doc["limits"] = {"drain_timeout_s": drain_timeout_s}
    if probe_interval_s is not None:
        doc["probe_interval_s"] = doc["reload_poll_s"] = probe_interval_s
    return yaml.safe_dump(doc, sort_keys=False)


def write_local_federation(
    root: Path,
    clusters: Sequence[ClusterSpec],
    services: Sequence[ServiceSpec],
    *,
    now: datetime,
    svid_ttl: timedelta = timedelta(hours=24),
    drain_timeout_s: float | None = None,
    probe_interval_s: float | None = None,
) -> dict[str, Path]:
    """Create every cluster's CA, gateway SVID, config and routing file under ``root``.

    Returns ``cluster name -> gateway.yaml path``. Overwrites what a previous run wrote.
    """
    root = root.resolve()  # bundle paths in gateway.yaml are absolute
    configs: dict[str, Path] = {}
    for cluster in clusters:
        ca = CertificateAuthority.create(TrustDomain(cluster.domain), now=now)
        directory = root / cluster.name
        ca.save(directory / "ca", force=True)
        ca.bundle().save(root / "bundles" / f"{cluster.domain}.json")
        svid = issue_x509_svid(ca, gateway_id(cluster.domain, cluster.name), now=now, ttl=svid_ttl)
        svid.save(directory)
        write_routing_file(
            directory / "routing.yaml", routing_model_for(cluster, clusters, services)
        )
        config = directory / "gateway.yaml"
        write_file(
            config,
            _gateway_yaml(cluster, clusters, root, drain_timeout_s, probe_interval_s).encode(),
            mode=PUBLIC_MODE,
        )
        configs[cluster.name] = config
    return configs
