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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from federation.model.routing import PeerGateway, PriorityLevel, RoutingModel
from federation.service.leases import Reachability
from federation.service.placement_routes import PlannedTraffic
from federation.service.snapshot_bytes import EncodedContent, SnapshotEncoder
from federation.service.snapshots import (
    EQUAL_WEIGHT,
    MemberView,
    World,
    allows,
    serves,
)
from federation.store import (
    ComposedJsonObject,
    DocumentPart,
    SharedText,
    TextSlice,
    join_parts,
    normalise_parts,
)

#: A valid cluster name standing in for the remote level while a route skeleton is encoded.
_PLACEHOLDER = "zz-isthmus-remote-level-placeholder-zz"
_PLACEHOLDER_LEVEL = f'{{"weights":{{"{_PLACEHOLDER}":{EQUAL_WEIGHT}}}}}'
_EMPTY_TAIL = '"peers":[],"services":[]}'
_VERSION0 = '{"version":0,'


@dataclass(frozen=True)
class PlannedRouting:
    """One cluster's routing (version 0) as parts: literals and slices of texts the rebuild
    shares (:mod:`federation.store.composed`), and its snapshot's content digest."""

    parts: tuple[DocumentPart, ...]
    digest: str

    @property
    def text(self) -> str:
        """The routing JSON: ``RoutingModel.model_dump_json()``."""
        return join_parts(self.parts)


def parts_digest(parts: Sequence[DocumentPart], trust_digest: str) -> str:
    """The content digest of a snapshot whose routing is ``parts`` (normalised): SHA-256 over
    its literals and the digests and bounds of its slices, then the bundles' digest. Equal
    digests mean equal routing text; O(literal size) per cluster, not O(routing size)."""
    items = []
    for part in parts:
        if isinstance(part, str):
            items.append(f"L{len(part)}:{part}")  # length-prefixed: no two sequences collide
        else:
            items.append(f"S{part.section.digest}:{part.start}:{part.end};")
    items.append(f"\0{trust_digest}")
    return hashlib.sha256("".join(items).encode()).hexdigest()


class SplicedList:
    """Comma-joined JSON items in a fixed order; :meth:`without` drops one item by key in one
    copy of the text instead of joining N-1 items again."""

    def __init__(self, items: Sequence[tuple[str, str]]) -> None:
        self.text = ",".join(text for _, text in items)
        self.section = SharedText(self.text)
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

    def without_parts(self, key: str) -> tuple[TextSlice, ...]:
        """:meth:`without` as slices of :attr:`section` (nothing copied)."""
        size = len(self.text)
        span = self._spans.get(key)
        if span is None:
            return (TextSlice(self.section, 0, size),)
        start, end = span
        if start == 0:
            return (TextSlice(self.section, end + 1, size),)
        return TextSlice(self.section, 0, start - 1), TextSlice(self.section, end, size)


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

    def remote(
        self, world: World, me: MemberView, name: str
    ) -> tuple[tuple[DocumentPart, ...], str | None]:
        """``(weights body as parts, first routed cluster)`` of ``me``'s remote level (no parts
        when it routes to no other cluster)."""
        if self.open_to_all and not world.links_from(me.name):
            first = next((k for k in self.weights.keys[:2] if k != me.name), None)
            if first is None:
                return (), None
            return self.weights.without_parts(me.name), first
        remote = [
            m.name
            for m in self.candidates
            if m.name != me.name
            and world.reach.can_reach(me.name, m.name)
            and allows(m, name, me.name)
        ]
        body = json.dumps({n: EQUAL_WEIGHT for n in remote}, separators=(",", ":"))[1:-1]
        return ((body,) if body else ()), (remote[0] if remote else None)


class SnapshotPlanner:
    """Plans routings as parts; keeps each peer entry's encoding between rebuilds (a cluster's
    entry changes only when it re-registers) and the peer list while it is unchanged (so its
    digest is computed once). One instance per publisher; not thread-safe."""

    def __init__(self) -> None:
        self._peer_cache: dict[tuple[object, ...], tuple[PeerGateway, str]] = {}
        self._peer_list: SplicedList | None = None
        self._trust: tuple[dict[str, str], dict[str, str], str] | None = None
        #: literal texts by what they are a pure function of, kept while used (see _literal)
        self._literals: dict[tuple[object, ...], str] = {}
        self._used: dict[tuple[object, ...], str] = {}

    def _literal(self, key: tuple[object, ...], build: Callable[[], str]) -> str:
        """``build()``, or the text it returned for ``key`` in this or the previous plan: a
        cluster's routing head and its route skeletons change only when its own registration
        or service declaration does, so most are not encoded again (pydantic, ~20 us each)."""
        text = self._literals.get(key) or self._used.get(key)
        if text is None:
            text = build()
        self._used[key] = text
        return text

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
        listed = SplicedList([(name, entry[1]) for name, entry in items])
        last = self._peer_list
        if last is not None and last.keys == listed.keys and last.text == listed.text:
            listed = last
        self._peer_list = listed
        return peers, listed

    def plan(
        self,
        members: Sequence[MemberView],
        reach: Reachability,
        bundles: Mapping[str, str],
        bundle_updates: Mapping[str, str],
        current_digests: Mapping[str, str],
        *,
        planned: PlannedTraffic | None = None,
        trust_digest: str | None = None,
    ) -> dict[str, PlannedRouting]:
        """Routings of exactly the clusters whose snapshot digest (:func:`parts_digest`)
        differs from ``current_digests`` (same inputs and meaning as
        :func:`~federation.service.snapshots.plan_snapshots`, whose routings these equal).
        ``trust_digest`` stands for the bundles in the digests when the caller has one (the
        SHA-256 of their encoded section); one planner must be given it always or never."""
        peers, peer_list = self._peers(members)
        self._literals, self._used = self._used, {}  # kept: what the last plan used
        world = World(members, reach, bundles, bundle_updates, planned, peers=peers)
        if trust_digest is None:
            self._keep_trust_digest(world)
        else:
            world.__dict__["trust_digest"] = trust_digest
        shares = {name: _ServiceShare(world, name) for name in world.names}
        fallback = _PLACEHOLDER in world.by_name
        changed: dict[str, PlannedRouting] = {}
        for me in world.members:
            if fallback:
                parts: tuple[DocumentPart, ...] = (world.routing(me, 0).model_dump_json(),)
            else:
                parts = normalise_parts(self._routing_parts(world, me, shares, peer_list))
            digest = parts_digest(parts, world.trust_digest)
            if current_digests.get(me.name) != digest:
                changed[me.name] = PlannedRouting(parts, digest)
        return changed

    def _keep_trust_digest(self, world: World) -> None:
        """Reuse the bundles' digest while they are equal (hashing 1.2 MiB of bundles at
        1,000 clusters is most of a plan that only a health change started)."""
        last = self._trust
        if last is not None and last[0] == world.bundles and last[1] == world.updates:
            world.__dict__["trust_digest"] = last[2]
        else:
            self._trust = (world.bundles, world.updates, world.trust_digest)

    def _routing_parts(
        self,
        world: World,
        me: MemberView,
        shares: Mapping[str, _ServiceShare],
        peer_list: SplicedList,
    ) -> list[DocumentPart]:
        key = ("head", me.name, me.trust_domain, me.locality)
        parts: list[DocumentPart] = [self._literal(key, lambda: _head(me)), '"peers":[']
        parts += peer_list.without_parts(me.name)
        parts.append('],"services":[')
        separator = ""
        for name in world.names:
            route = self._route_parts(world, me, name, shares[name])
            if route is not None:
                parts.append(separator)
                parts += route
                separator = ","
        parts.append("]}")
        return parts

    def _route_parts(
        self, world: World, me: MemberView, name: str, share: _ServiceShare
    ) -> tuple[DocumentPart, ...] | None:
        if world.planned.routes.get(name, {}).get(me.name) is not None:
            route = world.route(me, name)  # the engine's levels: small, built in full
            return None if route is None else (route.model_dump_json(),)
        own = me.service(name)
        remote, first = share.remote(world, me, name)
        if own is None and not remote:
            return None
        local = own is not None and bool(own.healthy_endpoints)
        settings = own
        if settings is None and first is not None:
            settings = world.by_name[first].service(name)
        key = (
            "route",
            me.name if local else None,
            name,
            bool(remote),
            None if own is None else (own.endpoints, own.tcp_endpoints, own.allowed_sources),
            None if settings is None else (settings.timeout_s, settings.retry, settings.fault),
        )

        def skeleton_of() -> str:
            levels = []
            if local:
                levels.append(PriorityLevel(weights={me.name: EQUAL_WEIGHT}))
            if remote:
                levels.append(PriorityLevel(weights={_PLACEHOLDER: EQUAL_WEIGHT}))
            route = world.route_of(me, own, name, tuple(levels), {}, settings=settings)
            return route.model_dump_json()

        skeleton = self._literal(key, skeleton_of)
        if not remote:
            return (skeleton,)
        before, found, after = skeleton.partition(_PLACEHOLDER_LEVEL)
        if not found:  # the model changed shape: fail loudly in tests
            raise ValueError(f"route JSON lacks the placeholder level {_PLACEHOLDER_LEVEL!r}")
        return (before, '{"weights":{', *remote, "}}", after)


def _head(me: MemberView) -> str:
    """``me``'s routing JSON up to its peer list (version 0)."""
    head = RoutingModel(
        version=0, cluster=me.name, trust_domain=me.trust_domain, locality=me.locality
    ).model_dump_json()
    if not head.endswith(_EMPTY_TAIL):  # the model changed shape: fail loudly in tests
        raise ValueError(f"routing JSON does not end with {_EMPTY_TAIL!r}")
    return head[: -len(_EMPTY_TAIL)]


@dataclass(frozen=True)
class EncodedSnapshot:
    """A planned snapshot as the publisher stores and serves it: its ``content`` (routing parts
    and the bundle section the whole rebuild shares) and the ``document`` the store keeps, the
    same parts, so neither this process nor the store copies a shared text per cluster (the
    peer list, each service's remote weights, the 1.2 MiB of bundles at 1,000 clusters)."""

    content: EncodedContent
    document: ComposedJsonObject


def encode_planned(
    planned: Mapping[str, PlannedRouting],
    encoder: SnapshotEncoder,
    bundles: Mapping[str, str],
    bundle_updates: Mapping[str, str],
) -> dict[str, EncodedSnapshot]:
    """Each planned routing as the publisher stores and serves it, around the bundle section
    ``encoder`` encodes once per rebuild (and keeps while the bundles are equal)."""
    if not planned:
        return {}
    shared = encoder.section(
        {td: bundles[td] for td in sorted(bundles)},
        {td: bundle_updates[td] for td in sorted(bundle_updates)},
    )
    encoded = {}
    for name, item in planned.items():
        first = item.parts[0] if item.parts else None
        if not isinstance(first, str) or not first.startswith(_VERSION0):
            raise ValueError(f"routing JSON does not start with {_VERSION0!r}")
        content = EncodedContent(item.parts, shared)
        encoded[name] = EncodedSnapshot(content, content.document(item.digest))
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
    """Plan every cluster and encode the changed ones (pure; the publisher runs one rebuild at
    a time, on the event loop or in a worker thread, since ``planner`` and ``encoder`` keep
    caches)."""
    bundles = {td: world.bundles[td] for td in sorted(world.bundles)}
    updates = {td: world.bundle_updates[td] for td in sorted(world.bundle_updates)}
    section = encoder.section(bundles, updates)  # its digest, not a second 1.2 MiB JSON dump
    changed = planner.plan(
        world.members,
        world.reach,
        world.bundles,
        world.bundle_updates,
        current_digests,
        planned=world.planned,
        trust_digest=section.text.digest,
    )
    encoded = encode_planned(changed, encoder, world.bundles, world.bundle_updates)
    return {name: PlannedChange(changed[name], encoded[name]) for name in changed}
