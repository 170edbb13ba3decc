"""The engine's replayable request body: what a retry may send again."""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio

from proxy.engine.body import ReplayableBody


async def _client(parts: list[bytes], gate: trio.Event) -> AsyncIterator[bytes]:
    yield parts[0]
    await gate.wait()  # the client is slow with the rest
    for part in parts[1:]:
        yield part


async def test_a_retry_replays_the_prefix_then_continues_the_stream() -> None:
    gate = trio.Event()
    gate.set()
    body = ReplayableBody(_client([b"a", b"b", b"c"], gate))
    first = body.attempt()
    assert await first.__anext__() == b"a"
    await first.aclose()  # the attempt failed between chunks
    assert body.replayable
    assert [c async for c in body.attempt()] == [b"a", b"b", b"c"]


async def test_an_attempt_interrupted_while_waiting_for_the_client_is_not_replayable() -> None:
    gate = trio.Event()
    body = ReplayableBody(_client([b"a", b"b", b"c"], gate))
    first = body.attempt()
    assert await first.__anext__() == b"a"
    with trio.CancelScope() as scope:
        scope.cancel()
        await first.__anext__()  # cancelled inside the client's stream: it is finished now
    assert not body.replayable
    assert body.started  # so a retry is refused instead of sending b"a" as the whole body
