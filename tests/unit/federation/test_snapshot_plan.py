"""The shared-work planner writes exactly what the model-by-model builder writes, byte for byte."""

from __future__ import annotations

import gzip
import random
from collections.abc import Mapping

from federation.model import EndpointHealth, Locality, PeerProbe, ServiceHealth
from federation.model.api import Snapshot
from federation.model.routing import FaultPolicy, RetryPolicy
from federation.service.leases import LeaseInput, Reachability, assess_reachability
from federation.service.placement_routes import PlannedRoute, PlannedTraffic
from federation.service.snapshot_bytes import SnapshotEncoder, stamp, stamp_body
from federation.service.snapshot_plan import (
    RebuildInput,
    SnapshotPlanner,
    SplicedList,
    encode_planned,
    plan_and_encode,
)
from federation.service.snapshots import (
    MemberView,
    build_snapshot,
    plan_snapshots,
    with_version,
)


def svc(
    name: str = "checkout.shop",
    *,
    healthy: bool = True,
    allowed: tuple[str, ...] = ("*",),
    port: int = 8080,
    **extra: object,
) -> ServiceHealth:
    return ServiceHealth(
        name=name,
        endpoints=(EndpointHealth(address=f"127.0.0.1:{port}", healthy=healthy),),
        allowed_sources=allowed,
        **extra,  # type: ignore[arg-type]
    )


def member(name: str, *services: ServiceHealth, addresses: bool = True) -> MemberView:
    return MemberView(
        name=name,
        trust_domain=f"{name}.isthmus.test",
        locality=Locality(cloud="local", region=name),
        gateway_addresses=(f"127.0.0.1:{15000 + len(name)}",) if addresses else (),
        services=services,
    )


def reach_of(
    names: list[str], probes: Mapping[str, tuple[PeerProbe, ...]] | None = None
) -> Reachability:
    leases = {
        n: LeaseInput(10.0 if n != "silent" else 1.0, (probes or {}).get(n, ())) for n in names
    }
    return assess_reachability(leases, now=10.0, interval_s=1.0)


def assert_same(
    members: list[MemberView], reach: Reachability, planned: PlannedTraffic | None = None
) -> None:
    bundles = {m.trust_domain: '{"keys":[]}' for m in members}
    updates = {members[0].trust_domain: "signed"}
    old = plan_snapshots(members, reach, bundles, updates, {}, planned=planned)
    new = SnapshotPlanner().plan(members, reach, bundles, updates, {}, planned=planned)
    assert set(new) == set(old) == {m.name for m in members}
    restarted = SnapshotPlanner().plan(members, reach, bundles, updates, {}, planned=planned)
    for name, item in new.items():
        assert item.text == old[name].snapshot.routing.model_dump_json(), name
        assert item.digest == restarted[name].digest  # a restart plans the same digests
    assert len({i.digest for i in new.values()}) == len({i.text for i in new.values()})
    encoded = encode_planned(new, SnapshotEncoder(), bundles, updates)
    for name, enc in encoded.items():
        whole = enc.document.text
        assert whole == enc.content.text == old[name].snapshot.model_dump_json()
        assert Snapshot.model_validate_json(whole) == old[name].snapshot
        assert enc.document.digest == new[name].digest
        served = stamp(enc.content, 7)
        assert served.body == with_version(old[name].snapshot, 7).model_dump_json().encode()
        assert gzip.decompress(served.gzipped) == served.body == stamp_body(enc.content, 7)
        routing = with_version(old[name].snapshot, 7).routing.model_dump_json().encode()
        assert enc.content.routing_bytes(7) == routing


def test_simple_rule_fleet_is_byte_identical() -> None:
    members = [member(f"c{i}", svc(port=8000 + i)) for i in range(6)]
    assert_same(members, reach_of([m.name for m in members]))


def test_unhealthy_silent_link_down_and_restricted_sources_are_byte_identical() -> None:
    members = [
        member("a", svc(healthy=False), svc("cart.shop", allowed=("b",))),
        member("b", svc(), svc("cart.shop", allowed=("a", "cc"))),
        member("cc", svc(allowed=("a",)), svc("pay.shop")),
        member("d", svc(timeout_s=3.0, retry=RetryPolicy(attempts=2)), addresses=False),
        member("e"),
        member("silent", svc(fault=FaultPolicy(delay_ms=5, delay_percent=1.0))),
    ]
    probes = {"b": (PeerProbe(cluster="a", ok=False),)}
    assert_same(members, reach_of([m.name for m in members], probes))


def test_remote_only_route_takes_the_first_exporters_settings() -> None:
    members = [
        member("a"),
        member("b", svc(timeout_s=4.0, fault=FaultPolicy(abort_status=503, abort_percent=1.0))),
        member("c", svc(timeout_s=9.0)),
    ]
    assert_same(members, reach_of(["a", "b", "c"]))


def test_planned_traffic_is_byte_identical() -> None:
    members = [member(n, svc(), svc("cart.shop")) for n in ("a", "b", "c")]
    routes = {
        "checkout.shop": {
            "a": PlannedRoute(({"b": 70, "c": 30},), {"b": 0.5}),
            "b": PlannedRoute(({"b": 100}, {"a": 100})),
        }
    }
    planned = PlannedTraffic(3, routes, frozenset({"checkout.shop"}))
    assert_same(members, reach_of(["a", "b", "c"]), planned)


def test_only_changed_clusters_are_planned_and_a_restart_plans_the_same_digests() -> None:
    members = [member(n, svc()) for n in ("a", "b", "c")]
    reach = reach_of(["a", "b", "c"])
    planner = SnapshotPlanner()
    first = planner.plan(members, reach, {}, {}, {})
    digests = {name: item.digest for name, item in first.items()}
    assert planner.plan(members, reach, {}, {}, digests) == {}
    flipped = [member("a", svc(healthy=False)), *members[1:]]
    again = planner.plan(flipped, reach, {}, {}, digests)
    assert set(again) == {"a", "b", "c"}  # everyone stops routing to a (a itself goes remote)
    assert '"a":1' not in again["b"].text
    snap = build_snapshot(members[1], flipped, reach, {}, {})
    assert again["b"].text == snap.routing.model_dump_json()
    fresh = SnapshotPlanner().plan(flipped, reach, {}, {}, {})
    assert {n: i.digest for n, i in fresh.items()} == {n: i.digest for n, i in again.items()}
    now = {name: item.digest for name, item in again.items()}
    assert planner.plan(flipped, reach, {}, {}, now) == {}
    rotated = planner.plan(flipped, reach, {"a.isthmus.test": "{}"}, {}, now)
    assert set(rotated) == {"a", "b", "c"}  # a bundle change changes every snapshot


def test_spliced_list_drops_one_item() -> None:
    items = SplicedList([("a", "1"), ("b", "22"), ("c", "333")])
    assert items.without("a") == "22,333"
    assert items.without("b") == "1,333"
    assert items.without("c") == "1,22"
    assert items.without("zz") == "1,22,333"
    assert SplicedList([("a", "1")]).without("a") == ""


def _random_fleet(rng: random.Random, size: int) -> list[MemberView]:
    names = [f"c{i}" for i in range(size)]
    members = []
    for name in names:
        services = []
        for service in ("checkout.shop", "cart.shop"):
            if rng.random() < 0.8:
                allowed = ("*",) if rng.random() < 0.8 else tuple(rng.sample(names, min(2, size)))
                healthy = rng.random() < 0.8
                settings: dict[str, object] = {"timeout_s": rng.choice((None, 1.0, 2.5))}
                if rng.random() < 0.3:
                    settings["fault"] = FaultPolicy(delay_ms=rng.randrange(3), delay_percent=1.0)
                port = 8000 + rng.randrange(9)
                services.append(
                    svc(service, healthy=healthy, allowed=allowed, port=port, **settings)
                )
        members.append(member(name, *services, addresses=rng.random() < 0.9))
    return members


def test_successive_random_rebuilds_equal_the_reference_and_miss_no_change() -> None:
    """A publisher's planner over many rebuilds (its caches carried along): every routing is
    the reference builder's, and every cluster whose reference snapshot changed is replanned."""
    rng = random.Random(4)
    for _ in range(40):
        planner = SnapshotPlanner()
        served: dict[str, str] = {}
        reference: dict[str, str] = {}
        members = _random_fleet(rng, rng.randrange(1, 9))
        for _step in range(4):
            names = [m.name for m in members]
            probes = (
                {names[0]: (PeerProbe(cluster=names[-1], ok=False),)} if rng.random() < 0.3 else {}
            )
            reach = reach_of(names, probes)
            bundles = {m.trust_domain: f'{{"keys":[{rng.randrange(2)}]}}' for m in members}
            want = plan_snapshots(members, reach, bundles, {}, {})
            got = planner.plan(members, reach, bundles, {}, served)
            for name, item in got.items():
                assert item.text == want[name].snapshot.routing.model_dump_json(), name
                served[name] = item.digest
            moved = {n for n, p in want.items() if reference.get(n) != p.digest}
            assert moved <= set(got), moved - set(got)
            reference = {n: p.digest for n, p in want.items()}
            assert planner.plan(members, reach, bundles, {}, served) == {}
            i = rng.randrange(len(members))  # one cluster's health (or address) changes
            members[i] = _random_fleet(rng, len(members))[i]


def test_non_ascii_names_in_shared_texts_are_byte_identical() -> None:
    members = [
        MemberView(
            name=f"c{i}",
            trust_domain=f"c{i}.isthmus.test",
            locality=Locality(cloud="local", region="zürich" if i % 2 else "東京"),
            gateway_addresses=(f"127.0.0.1:{15000 + i}",),
            services=(svc(port=8000 + i),),
        )
        for i in range(4)
    ]
    assert_same(members, reach_of([m.name for m in members]))


def test_plan_and_encode_digests_survive_a_restart_and_follow_the_bundles() -> None:
    members = [member(n, svc()) for n in ("a", "b", "c")]
    reach = reach_of(["a", "b", "c"])
    bundles = {m.trust_domain: '{"keys":[]}' for m in members}
    world = RebuildInput(members, reach, bundles, {}, PlannedTraffic())
    first = plan_and_encode(SnapshotPlanner(), SnapshotEncoder(), world, {})
    digests = {name: item.routing.digest for name, item in first.items()}
    planner, encoder = SnapshotPlanner(), SnapshotEncoder()  # a restarted leader
    assert plan_and_encode(planner, encoder, world, digests) == {}
    reference = plan_snapshots(members, reach, bundles, {}, {})
    for name, item in first.items():
        assert item.encoded.document.text == reference[name].snapshot.model_dump_json()
    rotated = {**bundles, "a.isthmus.test": '{"keys":[1]}'}
    again = plan_and_encode(
        planner, encoder, RebuildInput(members, reach, rotated, {}, PlannedTraffic()), digests
    )
    assert set(again) == {"a", "b", "c"}
    for name, item in again.items():
        want = plan_snapshots(members, reach, rotated, {}, {})[name].snapshot.model_dump_json()
        assert item.encoded.content.text == want
