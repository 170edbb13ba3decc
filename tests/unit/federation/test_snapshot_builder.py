"""Snapshot builder: local first, then every reachable healthy cluster equally; deterministic."""

from __future__ import annotations

from federation.model import EndpointHealth, Locality, PeerProbe, ServiceHealth
from federation.service.leases import LeaseInput, Reachability, assess_reachability
from federation.service.snapshots import (
    MemberView,
    build_snapshot,
    plan_snapshots,
    snapshot_digest,
    with_version,
)


def svc(
    name: str = "checkout.shop", *, healthy: bool = True, allowed: tuple[str, ...] = ("*",)
) -> ServiceHealth:
    return ServiceHealth(
        name=name,
        endpoints=(EndpointHealth(address="127.0.0.1:8080", healthy=healthy),),
        allowed_sources=allowed,
    )


def member(name: str, *services: ServiceHealth) -> MemberView:
    return MemberView(
        name=name,
        trust_domain=f"{name}.isthmus.test",
        locality=Locality(cloud="local", region=name),
        gateway_addresses=(f"127.0.0.1:{15000 + len(name)}",),
        services=services,
    )


def all_up(*names: str, probes: dict[str, tuple[PeerProbe, ...]] | None = None) -> Reachability:
    probes = probes or {}
    return assess_reachability(
        {n: LeaseInput(10.0, probes.get(n, ())) for n in names}, now=10.0, interval_s=1.0
    )


def levels(snapshot_routing_service: object) -> list[dict[str, int]]:
    return [level.weights for level in snapshot_routing_service.priorities]  # type: ignore[attr-defined]


def test_local_first_then_others_equally() -> None:
    a, b, c = member("a", svc()), member("b", svc()), member("cc", svc())
    snap = build_snapshot(a, [a, b, c], all_up("a", "b", "cc"), {}, {})
    route = snap.routing.services[0]
    assert levels(route) == [{"a": 1}, {"b": 1, "cc": 1}]
    assert route.local_endpoints[0].address == "127.0.0.1:8080"
    peers = {p.cluster: p.spiffe_id for p in snap.routing.peers}
    assert peers == {
        "b": "spiffe://b.isthmus.test/isthmus/gateway/b",
        "cc": "spiffe://cc.isthmus.test/isthmus/gateway/cc",
    }


def test_cluster_without_healthy_local_endpoints_goes_remote() -> None:
    a, b = member("a", svc(healthy=False)), member("b", svc())
    route = build_snapshot(a, [a, b], all_up("a", "b"), {}, {}).routing.services[0]
    assert levels(route) == [{"b": 1}]
    # the unhealthy endpoint stays listed (stable set: the gateway keeps its outlier state),
    # but its cluster is in no priority level, so no traffic goes there
    assert [ep.address for ep in route.local_endpoints] == ["127.0.0.1:8080"]


def test_silent_cluster_leaves_everyone_elses_snapshot() -> None:
    a, b, c = member("a"), member("b", svc()), member("cc", svc())
    reach = assess_reachability(
        {"a": LeaseInput(10.0), "b": LeaseInput(1.0), "cc": LeaseInput(10.0)},
        now=10.0,
        interval_s=1.0,
    )
    route = build_snapshot(a, [a, b, c], reach, {}, {}).routing.services[0]
    assert levels(route) == [{"cc": 1}]


def test_link_down_is_routed_around_only_by_the_reporter() -> None:
    a, b, c = member("a"), member("b", svc()), member("cc")
    reach = all_up("a", "b", "cc", probes={"a": (PeerProbe(cluster="b", ok=False),)})
    assert build_snapshot(a, [a, b, c], reach, {}, {}).routing.services == ()
    route = build_snapshot(c, [a, b, c], reach, {}, {}).routing.services[0]
    assert levels(route) == [{"b": 1}]


def test_exporter_that_does_not_allow_the_caller_is_skipped() -> None:
    a, b, c = member("a"), member("b", svc(allowed=("cc",))), member("cc")
    reach = all_up("a", "b", "cc")
    assert build_snapshot(a, [a, b, c], reach, {}, {}).routing.services == ()
    assert levels(build_snapshot(c, [a, b, c], reach, {}, {}).routing.services[0]) == [{"b": 1}]


def test_snapshot_carries_every_bundle_and_update() -> None:
    a = member("a")
    snap = build_snapshot(a, [a], all_up("a"), {"b.t": "{}", "a.t": "{}"}, {"b.t": "jws"})
    assert list(snap.bundles) == ["a.t", "b.t"]
    assert snap.bundle_updates == {"b.t": "jws"}


def test_digest_ignores_order_and_version_but_not_content() -> None:
    a, b = member("a", svc()), member("b", svc())
    reach = all_up("a", "b")
    one = build_snapshot(a, [a, b], reach, {"x": "1", "y": "2"}, {})
    two = build_snapshot(a, [b, a], reach, {"y": "2", "x": "1"}, {})
    assert snapshot_digest(one) == snapshot_digest(with_version(two, 7))
    assert with_version(two, 7).routing.version == 7
    three = build_snapshot(a, [a, b], all_up("a"), {"x": "1", "y": "2"}, {})
    assert snapshot_digest(three) != snapshot_digest(one)


def test_plan_only_returns_clusters_whose_content_changed() -> None:
    a, b = member("a", svc()), member("b", svc())
    reach = all_up("a", "b")
    first = plan_snapshots([a, b], reach, {}, {}, {})
    assert set(first) == {"a", "b"}
    digests = {name: planned.digest for name, planned in first.items()}
    assert all(snapshot_digest(p.snapshot) == p.digest for p in first.values())
    assert plan_snapshots([a, b], reach, {}, {}, digests) == {}
    b_down = plan_snapshots([a, b], all_up("a"), {}, {}, digests)
    assert set(b_down) == {"a"}
