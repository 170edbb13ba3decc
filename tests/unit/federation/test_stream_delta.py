"""The federation's delta, cut from served routing bytes: applied by a gateway holding the base,
it gives exactly the routing a full push gives, for many random changes."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from typing import Any

from hypothesis import given, settings

from federation.model.routing import RoutingModel
from federation.model.routing_delta import apply_delta
from federation.service.snapshot_plan import SnapshotPlanner
from federation.service.stream_delta import (
    routing_delta_bytes,
    routing_delta_of_parts,
    routing_delta_within,
)
from federation.store import DocumentPart, join_parts
from tests.unit.federation.test_routing_delta import SERVICES, peer, routings
from tests.unit.federation.test_snapshot_plan import _random_fleet, member, reach_of, svc


@settings(max_examples=300, deadline=None)
@given(routings(), routings())
def test_a_byte_cut_delta_rebuilds_exactly_the_full_routing(
    base: dict[str, Any], new: dict[str, Any]
) -> None:
    held = RoutingModel.model_validate(base)
    full = RoutingModel.model_validate(new)
    served_base, served_new = held.model_dump_json().encode(), full.model_dump_json().encode()
    delta = routing_delta_bytes(served_base, served_new, full.version)
    same_head = base["locality"] == new["locality"]
    assert (delta is not None) == same_head
    if delta is not None:
        rebuilt = apply_delta(held, json.loads(delta))
        assert rebuilt == full
        assert rebuilt.model_dump_json() == full.model_dump_json()


def test_a_health_flip_cuts_only_the_changed_service() -> None:
    doc: dict[str, Any] = {
        "version": 4,
        "cluster": "aws",
        "trust_domain": "isthmus.test",
        "locality": {"cloud": "aws", "region": "r1"},
        "peers": [peer("gcp", 443), peer("azure", 443)],
        "services": [
            {"name": name, "priorities": [{"weights": {"gcp": 1, "aws": 2}}]} for name in SERVICES
        ],
    }
    base = RoutingModel.model_validate(doc)
    doc["services"][2]["cluster_health"] = {"gcp": 0.5}
    doc["version"] = 5
    new = RoutingModel.model_validate(doc)
    delta = routing_delta_bytes(base.model_dump_json().encode(), new.model_dump_json().encode(), 5)
    assert delta is not None
    changed = new.services[2].model_dump(mode="json")
    assert json.loads(delta) == {"version": 5, "services": [[0, 2], changed, [3, 5]]}


def test_other_shapes_get_no_delta() -> None:
    assert routing_delta_bytes(b"{}", b'{"version":2}', 2) is None
    assert routing_delta_bytes(b'{"version":1,"peers":[]}', b'{"version":2,"peers":[]}', 2) is None


def test_a_join_or_a_leave_in_a_long_peer_list_refers_to_every_other_peer() -> None:
    names = [f"c{i:03d}" for i in range(200)]
    doc: dict[str, Any] = {
        "version": 1,
        "cluster": "aws",
        "trust_domain": "isthmus.test",
        "locality": {"cloud": "aws", "region": "r1"},
        "peers": [peer(name, 443) for name in names if name != "c100"],
        "services": [],
    }
    base = RoutingModel.model_validate(doc)
    cases = {  # peers after -> the expected peer entries (c100 is the one joining/leaving)
        "join": ([peer(name, 443) for name in names], [[0, 100], peer("c100", 443), [100, 199]]),
        "first": ([peer("a", 443), *doc["peers"]], [peer("a", 443), [0, 199]]),
        "last": ([*doc["peers"], peer("z", 443)], [[0, 199], peer("z", 443)]),
        "leave": (doc["peers"][:50] + doc["peers"][51:], [[0, 50], [51, 199]]),
        "all": ([peer("x", 1)], [peer("x", 1)]),
    }
    for case, (peers, expected) in cases.items():
        new = RoutingModel.model_validate({**doc, "version": 2, "peers": peers})
        served = base.model_dump_json().encode(), new.model_dump_json().encode()
        delta = routing_delta_bytes(*served, 2)
        assert delta is not None, case
        entries = [
            e if isinstance(e, list) else RoutingModel.model_validate({**doc, "peers": [e]})
            for e in json.loads(delta)["peers"]
        ]
        wanted = [
            e if isinstance(e, list) else RoutingModel.model_validate({**doc, "peers": [e]})
            for e in expected
        ]
        assert entries == wanted, case
        assert apply_delta(base, json.loads(delta)) == new, case


@settings(max_examples=100, deadline=None)
@given(routings(), routings())
def test_a_delta_cut_in_place_equals_one_cut_from_copies(
    base: dict[str, Any], new: dict[str, Any]
) -> None:
    """The routings inside whole messages (as streams hold them) give the same delta as the
    routings alone: offsets, not copies, and nothing outside the spans is read."""
    served_base = RoutingModel.model_validate(base).model_dump_json().encode()
    served_new = RoutingModel.model_validate(new).model_dump_json().encode()
    line_base = b'{"type":"snapshot","version":1,"routing":' + served_base + b"}\n"
    line_new = b'{"x":"],\\"services\\":[","routing":' + served_new + b"]}]}"
    at_base = (len(line_base) - len(served_base) - 2, len(line_base) - 2)
    at_new = (len(line_new) - len(served_new) - 4, len(line_new) - 4)
    assert routing_delta_within(line_base, at_base, line_new, at_new, 7) == routing_delta_bytes(
        served_base, served_new, 7
    )


def test_a_delta_cut_from_parts_equals_the_one_cut_from_bytes() -> None:
    """Over a planner's successive rebuilds (health, address and probe changes), a delta cut
    from two routings' parts is the one cut from their bytes, and a health flip is always cut
    from parts (the peer list is kept between rebuilds)."""
    rng = random.Random(7)
    from_parts = 0
    for _ in range(30):
        planner = SnapshotPlanner()
        members = _random_fleet(rng, rng.randrange(1, 9))
        held: dict[str, tuple[int, tuple[DocumentPart, ...]]] = {}
        for step in range(1, 6):
            names = [m.name for m in members]
            bundles = {m.trust_domain: '{"keys":[]}' for m in members}
            for name, item in planner.plan(members, reach_of(names), bundles, {}, {}).items():
                if name in held:
                    version, base = held[name]
                    got = routing_delta_of_parts(base, item.parts, step)
                    old = join_parts(base).replace('{"version":0,', f'{{"version":{version},', 1)
                    new = item.text.replace('{"version":0,', f'{{"version":{step},', 1)
                    want = routing_delta_bytes(old.encode(), new.encode(), step)
                    assert got is None or got == want, name
                    from_parts += got is not None
                held[name] = (step, item.parts)
            i = rng.randrange(len(members))
            flipped = [s.model_copy(update={"endpoints": ()}) for s in members[i].services]
            if rng.random() < 0.3:  # sometimes a re-registration (a new peer entry) instead
                members[i] = _random_fleet(rng, len(members))[i]
            else:
                members[i] = replace(members[i], services=tuple(flipped))
    assert from_parts > 100


def test_a_health_flip_in_a_fleet_is_cut_from_parts() -> None:
    members = [member(f"c{i}", svc()) for i in range(20)]
    planner, names = SnapshotPlanner(), [m.name for m in members]
    bundles = {m.trust_domain: "{}" for m in members}
    before = planner.plan(members, reach_of(names), bundles, {}, {})
    members[3] = member("c3", svc(healthy=False))
    after = planner.plan(members, reach_of(names), bundles, {}, {})
    for name, item in after.items():
        delta = routing_delta_of_parts(before[name].parts, item.parts, 2)
        assert delta is not None, name
        assert b'"peers"' not in delta
