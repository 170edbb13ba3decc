"""The shared resume outcome: any number of parked tasks woken with it resume with None."""

from __future__ import annotations

import outcome
import trio
import trio.testing

from proxy.resume import RESUME, wake


def test_the_resume_outcome_unwraps_to_none_any_number_of_times() -> None:
    shared: outcome.Outcome[None] = RESUME
    assert shared.unwrap() is None
    assert shared.unwrap() is None  # outcome.Value would raise AlreadyUsedError here


async def test_parked_tasks_woken_with_it_resume_with_none() -> None:
    parked: list[trio.lowlevel.Task] = []
    resumed: list[object] = []

    async def park() -> None:
        parked.append(trio.lowlevel.current_task())
        resumed.append(
            await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.SUCCEEDED)
        )

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(park)
        await trio.testing.wait_all_tasks_blocked()
        for task in parked:
            wake(task)
    assert resumed == [None, None, None]
