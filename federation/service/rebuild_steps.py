"""The pure steps of a rebuild that the publisher runs in worker threads, shaped for latency.

A worker-thread hop costs several scheduler passes of a busy event loop, so the publisher makes
as few as it can between a health change and the pushes: planning, encoding and stamping the
JSON bodies happen in ONE hop, before the store assigns the versions, with the versions it will
assign predicted (each served version + 1, or 1; the leader is the only writer of snapshots).
A body whose prediction turns out wrong (another replica wrote meanwhile) is stamped again with
the assigned version before anything is served, so a served body always carries its stored
version. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from federation.service.snapshot_bytes import EncodedContent, SnapshotEncoder, stamp_body
from federation.service.snapshot_plan import (
    PlannedChange,
    RebuildInput,
    SnapshotPlanner,
    plan_and_encode,
)


@dataclass(frozen=True)
class StampedPlan:
    """The clusters whose snapshot changes, and each one's JSON body at its predicted version."""

    changed: dict[str, PlannedChange]
    bodies: dict[str, bytes]
    predicted: dict[str, int]


def plan_and_stamp(
    planner: SnapshotPlanner,
    encoder: SnapshotEncoder,
    world: RebuildInput,
    served: Mapping[str, tuple[int, str]],
) -> StampedPlan:
    """Plan and encode every cluster (``served``: each served ``(version, digest)``) and stamp
    each changed one at version ``served version + 1`` (1 if none is served)."""
    current = {name: digest for name, (_, digest) in served.items()}
    changed = plan_and_encode(planner, encoder, world, current)
    predicted = {name: served[name][0] + 1 if name in served else 1 for name in changed}
    contents = {name: item.encoded.content for name, item in changed.items()}
    return StampedPlan(changed, stamp_bodies(contents, predicted), predicted)


def stamp_bodies(
    contents: Mapping[str, EncodedContent], versions: Mapping[str, int]
) -> dict[str, bytes]:
    """Each content's JSON body at ``versions[name]``."""
    return {name: stamp_body(contents[name], version) for name, version in versions.items()}
