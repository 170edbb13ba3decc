"""The listener's worker tasks: parked between items, woken for the next, the burst's extra
ones ended, and every parked one gone cleanly when its connection ends."""

from __future__ import annotations

import math

import trio

from proxy.listeners.h2workers import MIN_IDLE_WORKERS, StreamWorkers


class _Item:
    def __init__(self) -> None:
        self.scope: trio.CancelScope | None = None
        self.timed_out = False
        self.finished = False
        self.task: trio.lowlevel.Task | None = None


async def _settle() -> None:
    await trio.testing.wait_all_tasks_blocked()  # every submitted item ran, workers parked


async def test_parked_workers_take_the_next_items_and_a_burst_leaves_only_the_kept() -> None:
    async def run(item: _Item) -> None:
        item.task = trio.lowlevel.current_task()
        await trio.sleep(0)

    async def cancelled(item: _Item) -> None:
        raise AssertionError("nothing is cancelled here")

    async with trio.open_nursery() as nursery:
        workers: StreamWorkers[_Item] = StreamWorkers(nursery, run, cancelled)
        first = [_Item() for _ in range(3)]
        for item in first:
            workers.submit(item, math.inf, trio.current_time())
        await _settle()
        tasks = {item.task for item in first}
        again = [_Item() for _ in range(3)]
        for item in again:
            workers.submit(item, math.inf, trio.current_time())
        await _settle()
        assert all(item.finished for item in [*first, *again])
        assert {item.task for item in again} <= tasks  # parked workers, not new tasks
        burst = [_Item() for _ in range(3 * MIN_IDLE_WORKERS)]
        for item in burst:
            workers.submit(item, math.inf, trio.current_time())
        await _settle()
        assert all(item.finished for item in burst) and workers.active == 0
        # the most that ran at once stay parked (no deadline: the timer never started)
        assert len(nursery.child_tasks) == 3 * MIN_IDLE_WORKERS
        nursery.cancel_scope.cancel()  # the connection ends: every parked worker leaves
    assert not nursery.child_tasks


async def test_a_connection_end_cancels_parked_and_running_workers() -> None:
    started = trio.Event()

    async def run(item: _Item) -> None:
        started.set()
        await trio.sleep_forever()

    async def cancelled(item: _Item) -> None:
        raise AssertionError("not our scope's cancellation")

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            workers: StreamWorkers[_Item] = StreamWorkers(nursery, run, cancelled)
            hanging = _Item()
            workers.submit(hanging, math.inf, trio.current_time())
            await started.wait()
            nursery.cancel_scope.cancel()
    assert hanging.finished and workers.active == 0
