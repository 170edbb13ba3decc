"""The gateway's end of the stream applies deltas against a version it ACKed, NACKs one against
a version it does not hold (asking for the full one, which then still counts as new), and
refuses an invalid result as it refuses an invalid full routing."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from federation.client.errors import SnapshotRejected
from federation.client.h2duplex import DuplexStream
from federation.client.stream import BundleState, SnapshotStream
from federation.model.routing import RoutingModel
from tests.unit.federation.test_routing_delta import peer


class FakeDuplex:
    def __init__(self, lines: list[dict[str, Any]]) -> None:
        self.lines = [json.dumps(doc).encode() for doc in lines]
        self.sent: list[dict[str, Any]] = []

    async def receive_line(self) -> bytes:
        return self.lines.pop(0)

    async def send(self, line: bytes) -> None:
        self.sent.append(json.loads(line))


ROUTING = RoutingModel.model_validate(
    {
        "version": 3,
        "cluster": "aws",
        "trust_domain": "isthmus.test",
        "locality": {"cloud": "aws", "region": "r1"},
        "peers": [peer("gcp", 443)],
        "services": [
            {"name": "checkout.shop", "priorities": [{"weights": {"gcp": 1}}]},
            {"name": "cart.shop", "priorities": [{"weights": {"aws": 1}}]},
        ],
    }
).model_dump(mode="json")
FLIPPED = {**ROUTING["services"][0], "cluster_health": {"gcp": 0.0}}


def stream_of(*lines: dict[str, Any]) -> tuple[SnapshotStream, FakeDuplex]:
    duplex = FakeDuplex(list(lines))
    return SnapshotStream(cast(DuplexStream, duplex), BundleState()), duplex


def delta(version: int, base: int, **changes: Any) -> dict[str, Any]:
    routing = {"version": version, **changes}
    return {"type": "delta", "version": version, "base": base, "routing": routing}


async def test_a_delta_against_the_acked_version_gives_the_full_snapshot() -> None:
    stream, _ = stream_of(
        {"type": "snapshot", "version": 3, "routing": ROUTING},
        delta(4, 3, services=[FLIPPED, [1, 2]]),
    )
    first = await stream.next_snapshot()
    await stream.send_ack(first.version, True)
    second = await stream.next_snapshot()
    expected = RoutingModel.model_validate(
        {**ROUTING, "version": 4, "services": [FLIPPED, ROUTING["services"][1]]}
    )
    assert second.version == 4
    assert second.routing == expected


async def test_a_delta_against_an_unacked_version_is_refused_for_a_refetch() -> None:
    stream, _ = stream_of(
        {"type": "snapshot", "version": 3, "routing": ROUTING},
        delta(4, 3, services=[FLIPPED, [1, 2]]),
    )
    first = await stream.next_snapshot()
    await stream.send_ack(first.version, False, "bundles do not verify")
    with pytest.raises(SnapshotRejected, match="does not hold") as caught:
        await stream.next_snapshot()
    assert caught.value.version == 4 and caught.value.refetch


async def test_an_invalid_delta_result_is_refused_like_a_full_routing() -> None:
    stream, _ = stream_of(
        {"type": "snapshot", "version": 3, "routing": ROUTING},
        delta(4, 3, peers=[[0, 1], peer("gcp", 8443)]),
        delta(5, 3, services=[[0, 3]]),
    )
    await stream.send_ack((await stream.next_snapshot()).version, True)
    with pytest.raises(SnapshotRejected, match="duplicate peer") as caught:
        await stream.next_snapshot()
    assert caught.value.version == 4 and not caught.value.refetch
    with pytest.raises(SnapshotRejected, match="neither an element nor a range"):
        await stream.next_snapshot()
