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
from dataclasses import dataclass, field
from functools import cached_property

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
from federation.service.placement_routes import PlannedTraffic

EQUAL_WEIGHT = 1


@dataclass(frozen=True)
class MemberView:
    """One joined cluster as the builder sees it: identity, addresses and its latest report."""

    name: str
    trust_domain: str
    locality: Locality
    gateway_addresses: tuple[str, ...]
    services: tuple[ServiceHealth, ...] = ()
    _index: dict[str, ServiceHealth] = field(default_factory=dict, compare=False, repr=False)

    def service(self, name: str) -> ServiceHealth | None:
        if not self._index and self.services:
            self._index.update((svc.name, svc) for svc in self.services)
        return self._index.get(name)


def gateway_spiffe_id(trust_domain: str, cluster: str) -> str:
    """The identity a cluster's gateway presents: ``spiffe://<td>/isthmus/gateway/<cluster>``."""
    return f"spiffe://{trust_domain}/isthmus/gateway/{cluster}"


def serves(member: MemberView, service: str) -> bool:
    """Whether ``member`` reports a healthy endpoint of ``service``."""
    svc = member.service(service)
    return svc is not None and bool(svc.healthy_endpoints)


def allows(member: MemberView, service: str, source: str) -> bool:
    """Whether ``member``'s ``service`` admits calls from cluster ``source``."""
    svc = member.service(service)
    return svc is not None and ("*" in svc.allowed_sources or source in svc.allowed_sources)


def _sha256_json(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


class World:
    """What every cluster's snapshot shares, computed once per plan: members in name order,
    their peer entries, service names and the bundle maps (with their digest)."""

    def __init__(
        self,
        members: Sequence[MemberView],
        reach: Reachability,
        bundles: Mapping[str, str],
        bundle_updates: Mapping[str, str],
        planned: PlannedTraffic | None = None,
        *,
        peers: Mapping[str, PeerGateway] | None = None,
    ) -> None:
        self.planned = planned or PlannedTraffic()
        if peers is not None:  # already built by the caller (same content as ``peer_of``)
            self.__dict__["peers"] = dict(peers)
        self.members = sorted(members, key=lambda m: m.name)
        self.reach = reach
        self.bundles = {td: bundles[td] for td in sorted(bundles)}
        self.updates = {td: bundle_updates[td] for td in sorted(bundle_updates)}
        self.names = sorted({svc.name for member in self.members for svc in member.services})

    @staticmethod
    def peer_of(m: MemberView) -> PeerGateway:
        """The peer entry of a member with gateway addresses."""
        return PeerGateway(
            cluster=m.name,
            trust_domain=m.trust_domain,
            spiffe_id=gateway_spiffe_id(m.trust_domain, m.name),
            addresses=m.gateway_addresses,
            locality=m.locality,
        )

    @cached_property
    def peers(self) -> dict[str, PeerGateway]:
        return {m.name: self.peer_of(m) for m in self.members if m.gateway_addresses}

    @cached_property
    def _link_sources(self) -> frozenset[str]:
        return frozenset(source for source, _ in self.reach.links_down)

    def links_from(self, source: str) -> bool:
        """Whether ``source`` reported any link to a peer as down."""
        return source in self._link_sources

    @cached_property
    def trust_digest(self) -> str:
        return _sha256_json([self.bundles, self.updates])

    def _usable(self, me: MemberView, name: str, cluster: str) -> bool:
        if cluster == me.name:
            return serves(me, name)
        other = self.by_name.get(cluster)
        return (
            other is not None
            and cluster in self.peers
            and self.reach.can_reach(me.name, cluster)
            and serves(other, name)
            and allows(other, name, me.name)
        )

    @cached_property
    def by_name(self) -> dict[str, MemberView]:
        return {m.name: m for m in self.members}

    def route(self, me: MemberView, name: str) -> ServiceRoute | None:
        own = me.service(name)
        # a declared service: the placement engine's levels, filtered by what is usable now
        planned = self.planned.levels(me.name, name, lambda c: self._usable(me, name, c))
        if planned is not None:
            return self._route(me, own, name, planned[0], planned[1])
        levels: list[PriorityLevel] = []
        if own is not None and own.healthy_endpoints:
            levels.append(PriorityLevel(weights={me.name: EQUAL_WEIGHT}))
        remote = {
            other.name: EQUAL_WEIGHT
            for other in self.members
            if other.name != me.name
            and other.name in self.peers
            and self.reach.can_reach(me.name, other.name)
            and serves(other, name)
            and allows(other, name, me.name)
        }
        if remote:
            levels.append(PriorityLevel(weights=remote))
        if own is None and not remote:
            return None
        return self._route(me, own, name, tuple(levels), {})

    def _settings_of(
        self, own: ServiceHealth | None, name: str, levels: tuple[PriorityLevel, ...]
    ) -> ServiceHealth | None:
        """Whose declared retry/fault/timeout a route uses: this cluster's own declaration
        when it exports the service, else the first exporter (by name) it routes to."""
        if own is not None:
            return own
        routed = sorted({c for level in levels for c, w in level.weights.items() if w > 0})
        for cluster in routed:
            member = self.by_name.get(cluster)
            svc = member.service(name) if member is not None else None
            if svc is not None:
                return svc
        return None

    def _route(
        self,
        me: MemberView,
        own: ServiceHealth | None,
        name: str,
        levels: tuple[PriorityLevel, ...],
        health: dict[str, float],
    ) -> ServiceRoute:
        settings = self._settings_of(own, name, levels)
        return self.route_of(me, own, name, levels, health, settings=settings)

    def route_of(
        self,
        me: MemberView,
        own: ServiceHealth | None,
        name: str,
        levels: tuple[PriorityLevel, ...],
        health: dict[str, float],
        *,
        settings: ServiceHealth | None,
    ) -> ServiceRoute:
        """``me``'s route of ``name`` with the given levels, taking retry/fault/timeout from
        ``settings`` (see :meth:`_settings_of` for whose)."""
        # Every reported endpoint, healthy or not: the set stays stable while health flaps, so
        # the gateway keeps each endpoint's pool and outlier-ejection backoff (its own outlier
        # detection and probes decide health; this cluster's level is dropped above when none
        # is healthy, which is what moves traffic away).
        local = tuple(
            LocalEndpoint(address=ep.address, protocol=ep.protocol, weight=ep.weight, zone=ep.zone)
            for ep in sorted(own.endpoints if own else (), key=lambda ep: ep.address)
        )
        tcp = tuple(sorted(ep.address for ep in own.tcp_endpoints)) if own else ()
        extra: dict[str, object] = {}
        if settings is not None:
            if settings.timeout_s is not None:
                extra["timeout_s"] = settings.timeout_s
            if settings.retry is not None:
                extra["retry"] = settings.retry
            extra["fault"] = settings.fault
        return ServiceRoute(
            name=name,
            local_endpoints=local,
            tcp_endpoints=tcp,
            priorities=levels,
            allowed_sources=tuple(sorted(own.allowed_sources)) if own else (),
            cluster_health=health,
            **extra,  # type: ignore[arg-type]
        )

    def routing(self, me: MemberView, version: int) -> RoutingModel:
        routes = (self.route(me, name) for name in self.names)
        return RoutingModel(
            version=version,
            cluster=me.name,
            trust_domain=me.trust_domain,
            locality=me.locality,
            peers=tuple(peer for name, peer in self.peers.items() if name != me.name),
            services=tuple(route for route in routes if route is not None),
        )

    def snapshot(self, me: MemberView, version: int = 0) -> Snapshot:
        return Snapshot(
            version=version,
            routing=self.routing(me, version),
            bundles=self.bundles,
            bundle_updates=self.updates,
        )

    def digest(self, snapshot: Snapshot) -> str:
        routing = snapshot.routing.model_copy(update={"version": 0}).model_dump_json()
        return hashlib.sha256(f"{routing}\0{self.trust_digest}".encode()).hexdigest()


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
    return World(members, reach, bundles, bundle_updates).snapshot(me, version)


def with_version(snapshot: Snapshot, version: int) -> Snapshot:
    """The same content stamped with ``version`` (the store assigns versions)."""
    routing = snapshot.routing.model_copy(update={"version": version})
    return snapshot.model_copy(update={"version": version, "routing": routing})


def snapshot_digest(snapshot: Snapshot) -> str:
    """SHA-256 of the snapshot's content, ignoring its version: equal content, equal digest."""
    world = World([], Reachability({}), snapshot.bundles, snapshot.bundle_updates)
    return world.digest(snapshot)


@dataclass(frozen=True)
class PlannedSnapshot:
    """A snapshot to store (version 0 until the store assigns one) and its content digest."""

    snapshot: Snapshot
    digest: str


def plan_snapshots(
    members: Sequence[MemberView],
    reach: Reachability,
    bundles: Mapping[str, str],
    bundle_updates: Mapping[str, str],
    current_digests: Mapping[str, str],
    *,
    planned: PlannedTraffic | None = None,
) -> dict[str, PlannedSnapshot]:
    """Snapshots of exactly the clusters whose content differs from ``current_digests``
    (cluster -> digest of what they are served now). ``planned`` traffic (the placement
    engine's) routes the services it declares; the rest follow the simple rule."""
    world = World(members, reach, bundles, bundle_updates, planned)
    changed: dict[str, PlannedSnapshot] = {}
    for me in world.members:
        snapshot = world.snapshot(me)
        digest = world.digest(snapshot)
        if current_digests.get(me.name) != digest:
            changed[me.name] = PlannedSnapshot(snapshot, digest)
    return changed
