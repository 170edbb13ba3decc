"""Bundle-set deltas on the stream: the federation tells a gateway only the trust domains added,
changed or removed since the set it sent last; the gateway applies one only on top of the set it
holds, and otherwise drops its set and reopens the stream for the full one."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from federation.client.errors import FederationUnavailable
from federation.client.h2duplex import DuplexStream
from federation.client.stream import BundleState, SnapshotStream
from federation.model.stream import DOWNSTREAM, StreamBundles, StreamBundlesDelta
from federation.service.snapshot_bytes import SnapshotEncoder, stamp
from federation.service.stream_push import PushEncoder
from tests.unit.federation.test_client_stream_delta import ROUTING, FakeDuplex
from tests.unit.federation.test_snapshot_bytes import _snapshots


def _held(line: bytes) -> BundleState:
    message = DOWNSTREAM.validate_json(line)
    assert isinstance(message, StreamBundles)
    state = BundleState()
    state.replace(message)
    return state


def _apply(state: BundleState, line: bytes) -> bool:
    message = DOWNSTREAM.validate_json(line)
    if isinstance(message, StreamBundles):
        state.replace(message)
        return True
    assert isinstance(message, StreamBundlesDelta)
    return state.apply(message)


def _as_full(state: BundleState, line: bytes) -> None:
    full = DOWNSTREAM.validate_json(line)
    assert isinstance(full, StreamBundles)
    assert (state.digest, state.bundles, state.bundle_updates) == (
        full.digest,
        full.bundles,
        full.bundle_updates,
    )


def test_a_join_sends_only_the_new_trust_domain_and_applies_to_the_full_set() -> None:
    encoder, pushes = SnapshotEncoder(), PushEncoder()
    before = pushes.push("c0", 1, stamp(encoder.content(_snapshots(9)[0]), 1).body).bundles
    after = pushes.push("c0", 2, stamp(encoder.content(_snapshots(10)[0]), 2).body).bundles
    line = pushes.bundles_line(before.digest, after)
    assert pushes.bundles_line(before.digest, after) is line  # cut once, shared
    doc = json.loads(line)
    assert doc["type"] == "bundles_delta" and doc["base"] == before.digest
    assert doc["digest"] == after.digest
    assert list(doc["bundles"]) == ["c9.isthmus.test"] and doc["bundle_updates"] == {}
    assert len(line) < len(after.line) / 2
    state = _held(before.line)
    assert _apply(state, line)
    _as_full(state, after.line)


def test_the_first_send_and_an_unknown_base_get_the_full_set() -> None:
    encoder, pushes = SnapshotEncoder(), PushEncoder()
    section = pushes.push("c0", 1, stamp(encoder.content(_snapshots(3)[0]), 1).body).bundles
    assert pushes.bundles_line("", section) is section.line
    assert pushes.bundles_line("never-sent-here", section) is section.line


def test_removals_and_changes_are_told_and_applied() -> None:
    encoder, pushes = SnapshotEncoder(), PushEncoder()
    many = pushes.push("c0", 1, stamp(encoder.content(_snapshots(9)[0]), 1).body).bundles
    fewer = _snapshots(8, bundle_extra="-rotated")[0]
    rotated = pushes.push("c0", 2, stamp(encoder.content(fewer), 2).body).bundles
    removed = pushes.push("c0", 3, stamp(encoder.content(_snapshots(8)[0]), 3).body).bundles
    state = _held(many.line)
    line = pushes.bundles_line(many.digest, removed)
    assert json.loads(line)["bundles"] == {"c8.isthmus.test": None}
    assert _apply(state, line)
    _as_full(state, removed.line)
    # every bundle and the update changed: the delta is no smaller, the full set is sent
    assert pushes.bundles_line(removed.digest, rotated) is rotated.line


def test_a_delta_against_another_set_drops_the_held_set() -> None:
    state = BundleState("d1", {"a.test": "A"}, {})
    mismatch = StreamBundlesDelta(type="bundles_delta", digest="d3", base="d2", bundles={})
    assert not state.apply(mismatch)
    assert (state.digest, state.bundles, state.bundle_updates) == ("", {}, {})
    assert not BundleState().apply(StreamBundlesDelta(type="bundles_delta", digest="d", base=""))


def _stream(state: BundleState, *lines: dict[str, Any]) -> SnapshotStream:
    return SnapshotStream(cast(DuplexStream, FakeDuplex(list(lines))), state)


async def test_the_stream_rebuilds_snapshots_from_the_delta_and_reopens_on_a_mismatch() -> None:
    state = BundleState("d1", {"a.test": "A", "b.test": "B"}, {"a.test": "jws-a"})
    change = {"type": "bundles_delta", "digest": "d2", "base": "d1"}
    stream = _stream(
        state,
        {**change, "bundles": {"b.test": None, "c.test": "C"}, "bundle_updates": {}},
        {"type": "snapshot", "version": 3, "routing": ROUTING},
    )
    snapshot = await stream.next_snapshot()
    assert snapshot.bundles == {"a.test": "A", "c.test": "C"}
    assert snapshot.bundle_updates == {"a.test": "jws-a"} and state.digest == "d2"
    stale = _stream(state, {**change, "bundles": {"x.test": "X"}})
    with pytest.raises(FederationUnavailable, match="does not hold"):
        await stale.next_snapshot()
    assert state.digest == "" and state.bundles == {}  # the reopened stream sends the full set
