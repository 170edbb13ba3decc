"""The deadline heaps' timers (listener request deadlines, HTTP/1.1 per-try deadlines) under
a MockClock: a deadline later than the one the timer sleeps until does not wake it, and must
still fire on time, also after the heap was compacted empty."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from proxy.listeners.h2workers import StreamWorkers
from proxy.upstream.h1deadlines import H1Deadlines


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


class _Item:
    def __init__(self, hang: bool) -> None:
        self.hang = hang
        self.scope: trio.CancelScope | None = None
        self.timed_out = False
        self.finished = False
        self.cancelled_at = math.nan


@pytest.mark.parametrize("finished_before", [1, 100])
async def test_a_later_request_deadline_fires_on_time(
    clock: trio.testing.MockClock, finished_before: int
) -> None:
    async def run(item: _Item) -> None:
        if item.hang:
            await trio.sleep_forever()

    async def cancelled(item: _Item) -> None:
        item.cancelled_at = trio.current_time()

    async with trio.open_nursery() as nursery:
        workers: StreamWorkers[_Item] = StreamWorkers(nursery, run, cancelled)
        for _ in range(finished_before):  # 100: the next submit compacts the heap empty
            workers.submit(_Item(hang=False), 1.0, trio.current_time())
            await trio.sleep(0.001)
        await trio.sleep(0.5)
        start = trio.current_time()
        late = _Item(hang=True)
        workers.submit(late, 2.0, trio.current_time())  # later than what the timer sleeps until
        with trio.fail_after(10):
            while not late.finished:
                await trio.sleep(0.01)
        assert late.timed_out
        assert late.cancelled_at == pytest.approx(start + 2.0, abs=0.02)
        nursery.cancel_scope.cancel()


async def test_a_later_per_try_deadline_closes_its_stream_on_time(
    clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        deadlines = H1Deadlines(nursery)
        for _ in range(100):  # finished watches; the next one compacts the heap empty
            a, _b = trio.testing.memory_stream_pair()
            deadlines.finished(deadlines.watch(a, trio.current_time() + 1.0))
            await trio.sleep(0.001)
        await trio.sleep(0.5)
        stream, _peer = trio.testing.memory_stream_pair()
        start = trio.current_time()
        watch = deadlines.watch(stream, start + 2.0)
        with trio.fail_after(10):
            while not watch.expired:
                await trio.sleep(0.01)
        assert trio.current_time() == pytest.approx(start + 2.0, abs=0.02)
        with pytest.raises(trio.ClosedResourceError):
            await stream.send_all(b"x")
        nursery.cancel_scope.cancel()
