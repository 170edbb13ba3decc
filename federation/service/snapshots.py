"""Snapshot builder: one routing model per cluster from members, reports and reachability.

Pure and deterministic: the same inputs give byte-identical snapshots, so the service bumps a
cluster's version only when :func:`snapshot_digest` changes. Until the placement engine is wired
in, priorities follow a simple rule for each service of cluster ``X``:

* level 0 — ``X`` itself, when its own latest report has a healthy endpoint for the service
  (the gateway's own view of its backends decides; its lease is about reaching *others*);
* level 1 — every other cluster that is up, reachable from ``X`` (no link-down report from
  ``X``), has a healthy endpoint for the service and allows ``X`` as a source; equal weights.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from federation.model.api import ServiceHealth, Snapshot
from federation.model.routing import (
    LocalEndpoint,
    Locality,
    PeerGateway,
    PriorityLevel,
    RoutingModel,
    ServiceRoute,
)
from federation.service.leases import Reachability

EQUAL_WEIGHT = 1


@dataclass(frozen=True)
class MemberView:
    """One joined cluster as the builder sees it: identity, addresses and its latest report."""

    name: str
    trust_domain: str
    locality: Locality
    gateway_addresses: tuple[str, ...]
    services: tuple[ServiceHealth, ...] = ()

    def service(self, name: str) -> ServiceHealth | None:
        return next((svc for svc in self.services if svc.name == name), None)


def gateway_spiffe_id(trust_domain: str, cluster: str) -> str:
    """The identity a cluster's gateway presents: ``spiffe://<td>/isthmus/gateway/<cluster>``."""
    return f"spiffe://{trust_domain}/isthmus/gateway/{cluster}"


def _serves(member: MemberView, service: str) -> bool:
    svc = member.service(service)
    return svc is not None and bool(svc.healthy_endpoints)


def _allows(member: MemberView, service: str, source: str) -> bool:
    svc = member.service(service)
    return svc is not None and ("*" in svc.allowed_sources or source in svc.allowed_sources)


def _peers(me: MemberView, members: Sequence[MemberView]) -> tuple[PeerGateway, ...]:
    return tuple(
        PeerGateway(
            cluster=other.name,
            trust_domain=other.trust_domain,
            spiffe_id=gateway_spiffe_id(other.trust_domain, other.name),
            addresses=other.gateway_addresses,
            locality=other.locality,
        )
        for other in members
        if other.name != me.name and other.gateway_addresses
    )


def _route(
    me: MemberView, name: str, members: Sequence[MemberView], reach: Reachability
) -> ServiceRoute | None:
    own = me.service(name)
    levels: list[PriorityLevel] = []
    if own is not None and own.healthy_endpoints:
        levels.append(PriorityLevel(weights={me.name: EQUAL_WEIGHT}))
    remote = {
        other.name: EQUAL_WEIGHT
        for other in members
        if other.name != me.name
        and other.gateway_addresses
        and reach.can_reach(me.name, other.name)
        and _serves(other, name)
        and _allows(other, name, me.name)
    }
    if remote:
        levels.append(PriorityLevel(weights=remote))
    if own is None and not remote:
        return None
    local = tuple(
        LocalEndpoint(address=ep.address, protocol=ep.protocol, weight=ep.weight, zone=ep.zone)
        for ep in sorted(own.healthy_endpoints if own else (), key=lambda ep: ep.address)
    )
    return ServiceRoute(
        name=name,
        local_endpoints=local,
        priorities=tuple(levels),
        allowed_sources=tuple(sorted(own.allowed_sources)) if own else (),
    )


def build_routing(
    me: MemberView, members: Sequence[MemberView], reach: Reachability, *, version: int = 0
) -> RoutingModel:
    """The routing model of cluster ``me`` (``members`` may include ``me``; order is irrelevant)."""
    ordered = sorted(members, key=lambda m: m.name)
    names = sorted({svc.name for member in ordered for svc in member.services})
    routes = (_route(me, name, ordered, reach) for name in names)
    return RoutingModel(
        version=version,
        cluster=me.name,
        trust_domain=me.trust_domain,
        locality=me.locality,
        peers=_peers(me, ordered),
        services=tuple(route for route in routes if route is not None),
    )


def build_snapshot(
    me: MemberView,
    members: Sequence[MemberView],
    reach: Reachability,
    bundles: Mapping[str, str],
    bundle_updates: Mapping[str, str],
    *,
    version: int = 0,
) -> Snapshot:
    """Cluster ``me``'s snapshot: its routing model plus every federated bundle and update."""
    return Snapshot(
        version=version,
        routing=build_routing(me, members, reach, version=version),
        bundles={td: bundles[td] for td in sorted(bundles)},
        bundle_updates={td: bundle_updates[td] for td in sorted(bundle_updates)},
    )


def with_version(snapshot: Snapshot, version: int) -> Snapshot:
    """The same content stamped with ``version`` (the store assigns versions)."""
    routing = snapshot.routing.model_copy(update={"version": version})
    return snapshot.model_copy(update={"version": version, "routing": routing})


def snapshot_digest(snapshot: Snapshot) -> str:
    """SHA-256 of the snapshot's content, ignoring its version: equal content, equal digest."""
    doc = with_version(snapshot, 0).model_dump(mode="json")
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def plan_snapshots(
    members: Sequence[MemberView],
    reach: Reachability,
    bundles: Mapping[str, str],
    bundle_updates: Mapping[str, str],
    current_digests: Mapping[str, str],
) -> dict[str, Snapshot]:
    """Snapshots (version 0, to be stamped by the store) of exactly the clusters whose content
    differs from ``current_digests`` (cluster -> digest of what they are served now)."""
    changed: dict[str, Snapshot] = {}
    for me in sorted(members, key=lambda m: m.name):
        snapshot = build_snapshot(me, members, reach, bundles, bundle_updates)
        if current_digests.get(me.name) != snapshot_digest(snapshot):
            changed[me.name] = snapshot
    return changed
