"""Stream messages cut from served snapshot bodies: routing apart from bundles, bundles built
once per set, and the gateway rebuilding exactly the snapshot the long-poll serves."""

from __future__ import annotations

import json

from federation.model import Snapshot
from federation.model.routing import RoutingModel
from federation.model.routing_delta import apply_delta
from federation.model.stream import DOWNSTREAM, StreamBundles, StreamSnapshot
from federation.service.placement_routes import PlannedTraffic
from federation.service.served import ServedSnapshot
from federation.service.snapshot_bytes import SnapshotEncoder, stamp
from federation.service.snapshot_plan import RebuildInput, SnapshotPlanner, plan_and_encode
from federation.service.stream_push import PushEncoder
from tests.unit.federation.test_snapshot_bytes import _snapshots
from tests.unit.federation.test_snapshot_plan import member, reach_of, svc


def _rebuilt(bundles_line: bytes, snapshot_line: bytes) -> Snapshot:
    """What the gateway's client makes of the two messages."""
    bundles = DOWNSTREAM.validate_json(bundles_line)
    routing = DOWNSTREAM.validate_json(snapshot_line)
    assert isinstance(bundles, StreamBundles) and isinstance(routing, StreamSnapshot)
    return Snapshot(
        version=routing.version,
        routing=routing.routing,
        bundles=bundles.bundles,
        bundle_updates=bundles.bundle_updates,
    )


def test_pushes_rebuild_the_served_snapshot_and_share_one_bundle_section() -> None:
    encoder, pushes = SnapshotEncoder(), PushEncoder()
    sections = []
    for index, snapshot in enumerate(_snapshots(5)):
        body = stamp(encoder.content(snapshot), 40 + index).body
        push = pushes.push(snapshot.routing.cluster, 40 + index, body)
        assert push.snapshot_line.endswith(b"\n") and push.bundles.line.endswith(b"\n")
        assert b'"bundles"' not in push.snapshot_line  # routing only
        rebuilt = _rebuilt(push.bundles.line, push.snapshot_line)
        assert rebuilt == Snapshot.model_validate_json(body)
        sections.append(push.bundles)
    assert all(section is sections[0] for section in sections)  # built once per rebuild


def test_a_bundle_change_gives_a_new_digest_and_a_cached_version_is_not_recut() -> None:
    encoder, pushes = SnapshotEncoder(), PushEncoder()
    before = _snapshots(3)[0]
    after = _snapshots(3, bundle_extra="-rotated")[0]
    first = pushes.push("c0", 1, stamp(encoder.content(before), 1).body)
    assert pushes.push("c0", 1, b"not even looked at") is first
    second = pushes.push("c0", 2, stamp(encoder.content(after), 2).body)
    assert second.bundles.digest != first.bundles.digest
    bundles = DOWNSTREAM.validate_json(second.bundles.line)
    assert isinstance(bundles, StreamBundles)
    assert bundles.bundles == after.bundles and bundles.digest == second.bundles.digest


def test_a_body_of_another_shape_is_parsed_into_the_same_messages() -> None:
    snapshot = _snapshots(2)[1]
    canonical = stamp(SnapshotEncoder().content(snapshot), 9).body
    spaced = json.dumps(json.loads(canonical), indent=1).encode()
    cut = PushEncoder().push("c1", 9, canonical)
    parsed = PushEncoder().push("c1", 9, spaced)
    assert json.loads(parsed.snapshot_line) == json.loads(cut.snapshot_line)
    assert json.loads(parsed.bundles.line)["bundles"] == snapshot.bundles
    assert _rebuilt(parsed.bundles.line, parsed.snapshot_line) == Snapshot.model_validate_json(
        canonical
    )


def test_garbage_becomes_a_snapshot_without_routing_that_the_gateway_refuses() -> None:
    push = PushEncoder().push("c1", 3, b"\x00 not json")
    doc = json.loads(push.snapshot_line)
    assert doc == {"type": "snapshot", "version": 3, "routing": None}


def test_a_flip_between_planned_snapshots_is_a_delta_without_building_the_full_message() -> None:
    """Pushes of planned content: the delta a watcher gets for a health flip rebuilds exactly
    the full routing, and the full ``snapshot`` message is built only when asked for (its
    size is known before)."""
    members = [member(f"c{i}", svc()) for i in range(12)]
    names = [m.name for m in members]
    bundles = {m.trust_domain: '{"keys":[]}' for m in members}
    planner, encoder, pushes = SnapshotPlanner(), SnapshotEncoder(), PushEncoder()

    def served(version: int) -> ServedSnapshot:
        world = RebuildInput(members, reach_of(names), bundles, {}, PlannedTraffic())
        content = plan_and_encode(planner, encoder, world, {})["c0"].encoded.content
        return ServedSnapshot(version, "d", None, 0.0, content=content)

    base = pushes.push_served("c0", served(1))
    held = RoutingModel.model_validate_json(base.routing)  # the gateway got v1 in full
    members[5] = member("c5", svc(healthy=False))
    new_served = served(2)
    push = pushes.push_served("c0", new_served)
    size = push.line_size
    line = pushes.delta("c0", base, push)
    assert line is not None and b'"peers"' not in line
    assert push._line is None  # nothing built for a watcher that takes the delta
    assert size == len(push.snapshot_line)
    full = json.loads(push.snapshot_line)["routing"]
    assert apply_delta(held, json.loads(line)["routing"]) == RoutingModel.model_validate(full)
    parts = new_served.routing_parts(b'{"type":"snapshot","version":2,"routing":', b"}\n")
    assert parts is not None and push.snapshot_line == parts[0]
