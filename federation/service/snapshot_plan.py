"""Every cluster's routing as JSON text, planned with the work shared between clusters (pure).

At N clusters each routing model lists N-1 peers and, for a service every cluster exports,
N-1 remote weights: building N pydantic models of size N (and validating every weight's name)
cost 5-7 ms per cluster at 1,000, i.e. 5-7 s per rebuild. Most clusters' routing differs only
by "local first" (their own entry leaves the peer list and the remote level), so
:class:`SnapshotPlanner` encodes each peer entry and each service's remote-weights list once per
rebuild and, per cluster, splices its own entry out of the shared text (a memory copy). Only the
parts that really differ per cluster go through pydantic: the small route skeleton (own
endpoints, settings) and, for services the placement engine plans or when a link is reported
down or a service admits only some sources, the full route.

The output is byte-identical to ``RoutingModel.model_dump_json()`` of the routing
:mod:`federation.service.snapshots` builds (unit-tested against it), so digests agree with
:func:`~federation.service.snapshots.snapshot_digest` of a stored snapshot.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from federation.model.api import Snapshot
from federation.model.routing import Locality, PeerGateway, PriorityLevel, RoutingModel
from federation.service.leases import Reachability
from federation.service.placement_routes import PlannedTraffic
from federation.service.snapshot_bytes import (
    EncodedContent,
    SnapshotBody,
    SnapshotEncoder,
    stamp,
)
from federation.service.snapshots import (
    EQUAL_WEIGHT,
    MemberView,
    World,
    allows,
    serves,
)
from federation.store import SplitJsonObject

#: A valid cluster name standing in for the remote level while a route skeleton is encoded.
_PLACEHOLDER = "zz-isthmus-remote-level-placeholder-zz"
_PLACEHOLDER_LEVEL = f'{{"weights":{{"{_PLACEHOLDER}":{EQUAL_WEIGHT}}}}}'
_EMPTY_TAIL = '"peers":[],"services":[]}'
_VERSION0 = '{"version":0,'
_PROBE_LOCALITY = Locality(cloud="probe", region="probe")


@dataclass(frozen=True)
class PlannedRouting:
    """One cluster's routing as JSON (version 0) and its snapshot's content digest."""

    text: str
    digest: str


class SplicedList:
    """Comma-joined JSON items in a fixed order; :meth:`without` drops one item by key in one
    copy of the text instead of joining N-1 items again."""

    def __init__(self, items: Sequence[tuple[str, str]]) -> None:
        self.text = ",".join(text for _, text in items)
        self.keys = [key for key, _ in items]
        self._spans: dict[str, tuple[int, int]] = {}
        offset = 0
        for key, text in items:
            self._spans[key] = (offset, offset + len(text))
            offset += len(text) + 1

    def __len__(self) -> int:
        return len(self.keys)

    def without(self, key: str) -> str:
        span = self._spans.get(key)
        if span is None:
            return self.text
        start, end = span
        if start == 0:
            return self.text[end + 1 :]
        return self.text[: start - 1] + self.text[end:]


class _ServiceShare:
    """What every cluster's simple-rule route of one service shares: the clusters that could
    receive its traffic (up, with a gateway and a healthy endpoint), as spliceable weights."""

    def __init__(self, world: World, name: str) -> None:
        self.candidates = [
            m for m in world.members if m.name in world.peers and world.reach.is_up(m.name)
        ]
        self.candidates = [m for m in self.candidates if serves(m, name)]
        self.open_to_all = all(
            "*" in (svc.allowed_sources if (svc := m.service(name)) else ())
            for m in self.candidates
        )
        self.weights = SplicedList(
            [(m.name, f'"{m.name}":{EQUAL_WEIGHT}') for m in self.candidates]
        )

    def remote(self, world: World, me: MemberView, name: str) -> tuple[str, str | None]:
        """``(weights body, first routed cluster)`` of ``me``'s remote level (``""`` if none)."""
        if self.open_to_all and not world.links_from(me.name):
            body = self.weights.without(me.name)
            first = next((k for k in self.weights.keys[:2] if k != me.name), None)
            return body, first
        remote = [
            m.name
            for m in self.candidates
            if m.name != me.name
            and world.reach.can_reach(me.name, m.name)
            and allows(m, name, me.name)
        ]
        body = json.dumps({n: EQUAL_WEIGHT for n in remote}, separators=(",", ":"))[1:-1]
        return body, (remote[0] if remote else None)


class SnapshotPlanner:
    """Plans routing texts; keeps each peer entry's encoding between rebuilds (a cluster's
    entry changes only when it re-registers). One instance per publisher; not thread-safe."""

    def __init__(self) -> None:
        self._peer_cache: dict[tuple[object, ...], tuple[PeerGateway, str]] = {}

    def _peers(self, members: Sequence[MemberView]) -> tuple[dict[str, PeerGateway], SplicedList]:
        cache: dict[tuple[object, ...], tuple[PeerGateway, str]] = {}
        items = []
        for m in sorted(members, key=lambda m: m.name):
            if not m.gateway_addresses:
                continue
            key = (m.name, m.trust_domain, m.gateway_addresses, m.locality)
            entry = self._peer_cache.get(key)
            if entry is None:
                peer = World.peer_of(m)
                entry = (peer, peer.model_dump_json())
            cache[key] = entry
            items.append((m.name, entry))
        self._peer_cache = cache
        peers = {name: entry[0] for name, entry in items}
        return peers, SplicedList([(name, entry[1]) for name, entry in items])

    def plan(
        self,
        members: Sequence[MemberView],
        reach: Reachability,
        bundles: Mapping[str, str],
        bundle_updates: Mapping[str, str],
        current_digests: Mapping[str, str],
        *,
        planned: PlannedTraffic | None = None,
    ) -> dict[str, PlannedRouting]:
        """Routing texts of exactly the clusters whose snapshot digest differs from
        ``current_digests`` (same inputs and meaning as
        :func:`~federation.service.snapshots.plan_snapshots`)."""
        peers, peer_text = self._peers(members)
        world = World(members, reach, bundles, bundle_updates, planned, peers=peers)
        shares = {name: _ServiceShare(world, name) for name in world.names}
        fallback = _PLACEHOLDER in world.by_name
        changed: dict[str, PlannedRouting] = {}
        for me in world.members:
            if fallback:
                text = world.routing(me, 0).model_dump_json()
            else:
                text = self._routing_text(world, me, shares, peer_text)
            digest = hashlib.sha256(f"{text}\0{world.trust_digest}".encode()).hexdigest()
            if current_digests.get(me.name) != digest:
                changed[me.name] = PlannedRouting(text, digest)
        return changed

    def _routing_text(
        self,
        world: World,
        me: MemberView,
        shares: Mapping[str, _ServiceShare],
        peer_text: SplicedList,
    ) -> str:
        head = RoutingModel(
            version=0, cluster=me.name, trust_domain=me.trust_domain, locality=me.locality
        ).model_dump_json()
        if not head.endswith(_EMPTY_TAIL):  # the model changed shape: fail loudly in tests
            raise ValueError(f"routing JSON does not end with {_EMPTY_TAIL!r}")
        routes = (self._route_text(world, me, name, shares[name]) for name in world.names)
        services = ",".join(route for route in routes if route is not None)
        peers = peer_text.without(me.name)
        return f'{head[: -len(_EMPTY_TAIL)]}"peers":[{peers}],"services":[{services}]}}'

    @staticmethod
    def _route_text(world: World, me: MemberView, name: str, share: _ServiceShare) -> str | None:
        if world.planned.routes.get(name, {}).get(me.name) is not None:
            route = world.route(me, name)  # the engine's levels: small, built in full
            return None if route is None else route.model_dump_json()
        own = me.service(name)
        remote, first = share.remote(world, me, name)
        if own is None and not remote:
            return None
        levels = []
        if own is not None and own.healthy_endpoints:
            levels.append(PriorityLevel(weights={me.name: EQUAL_WEIGHT}))
        if remote:
            levels.append(PriorityLevel(weights={_PLACEHOLDER: EQUAL_WEIGHT}))
        settings = own
        if settings is None and first is not None:
            settings = world.by_name[first].service(name)
        skeleton = world.route_of(
            me, own, name, tuple(levels), {}, settings=settings
        ).model_dump_json()
        if not remote:
            return skeleton
        return skeleton.replace(_PLACEHOLDER_LEVEL, '{"weights":{' + remote + "}}", 1)


@dataclass(frozen=True)
class EncodedSnapshot:
    """A planned snapshot as the publisher stores and stamps it. ``document`` is the version-0
    snapshot (as ``Snapshot.model_dump_json()`` writes it) split before the bundle section the
    whole rebuild shares, so neither this process nor the store copies that section per cluster
    (1.2 MiB x 1,000 clusters per rebuild). ``content.text`` therefore holds only the head."""

    content: EncodedContent
    document: SplitJsonObject


def encode_planned(
    planned: Mapping[str, PlannedRouting],
    encoder: SnapshotEncoder,
    bundles: Mapping[str, str],
    bundle_updates: Mapping[str, str],
) -> dict[str, EncodedSnapshot]:
    """Each planned routing as the publisher stores and stamps it, around the bundle section
    ``encoder`` encodes once per rebuild (and keeps while the bundles are equal)."""
    if not planned:
        return {}
    probe = Snapshot(
        version=0,
        routing=RoutingModel(version=0, cluster="a", trust_domain="a", locality=_PROBE_LOCALITY),
        bundles=dict(bundles),
        bundle_updates=dict(bundle_updates),
    )
    shared = encoder.content(probe).shared
    encoded = {}
    for name, item in planned.items():
        if not item.text.startswith(_VERSION0):
            raise ValueError(f"routing JSON does not start with {_VERSION0!r}")
        head = '{"version":0,"routing":' + item.text
        content = EncodedContent(head, item.text[len(_VERSION0) :], shared)
        encoded[name] = EncodedSnapshot(content, SplitJsonObject(head, shared.text))
    return encoded


@dataclass(frozen=True)
class RebuildInput:
    """Everything one rebuild plans from (immutable once handed over: safe in a thread)."""

    members: Sequence[MemberView]
    reach: Reachability
    bundles: Mapping[str, str]
    bundle_updates: Mapping[str, str]
    planned: PlannedTraffic


@dataclass(frozen=True)
class PlannedChange:
    """One cluster whose snapshot changes: its routing (and digest) and its encodings."""

    routing: PlannedRouting
    encoded: EncodedSnapshot


def plan_and_encode(
    planner: SnapshotPlanner,
    encoder: SnapshotEncoder,
    world: RebuildInput,
    current_digests: Mapping[str, str],
) -> dict[str, PlannedChange]:
    """Plan every cluster and encode the changed ones (pure; the publisher runs it in a worker
    thread, one rebuild at a time, since ``planner`` and ``encoder`` keep caches)."""
    changed = planner.plan(
        world.members,
        world.reach,
        world.bundles,
        world.bundle_updates,
        current_digests,
        planned=world.planned,
    )
    encoded = encode_planned(changed, encoder, world.bundles, world.bundle_updates)
    return {name: PlannedChange(changed[name], encoded[name]) for name in changed}


def stamp_all(items: Mapping[str, tuple[EncodedContent, int]]) -> dict[str, SnapshotBody]:
    """Each content stamped with its store-assigned version (JSON and gzip; pure)."""
    return {name: stamp(content, version) for name, (content, version) in items.items()}
