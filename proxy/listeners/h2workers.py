"""Running the exchanges of one HTTP/2 connection: reusable worker tasks and one deadline heap.

Why not a task per stream with a deadline on its cancel scope: in trio, spawning a task costs
~6 µs and a cancel scope with a deadline ~7 µs against ~4.6 µs without (measured here), on
every request. Here a worker task that finished an exchange parks and takes the next one, and
request deadlines sit in one heap watched by one timer task, which cancels an exchange's
(plain) scope when its deadline passes. Parked workers wait in a plain list woken with
``trio.lowlevel.reschedule`` (:func:`proxy.resume.wake`), not a ``ParkingLot`` (its unpark
builds a generator and an ordered dict entry per wake: ~0.6–1.5 µs more per request, /tmp
ping-pong measurement);
the most recently parked worker is woken first (its stack is the warmest).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

import trio

from proxy.deadlines import DeadlineHeap
from proxy.resume import wake

MIN_IDLE_WORKERS = 16
MAX_IDLE_WORKERS = 256


class Runnable(Protocol):
    """What the workers run: an exchange with a cancel scope slot and a finished flag."""

    scope: trio.CancelScope | None
    timed_out: bool
    finished: bool


R = TypeVar("R", bound=Runnable)


class Deadline:
    """A cancel scope to cancel at a time (:meth:`StreamWorkers.cancel_at`) unless
    ``finished`` is set first: e.g. a connection's idle timeout on its read loop's scope."""

    __slots__ = ("finished", "scope", "timed_out")

    def __init__(self, scope: trio.CancelScope) -> None:
        self.scope: trio.CancelScope | None = scope
        self.timed_out = False
        self.finished = False


class StreamWorkers(Generic[R]):
    """Owned by a connection driver; the tasks live in ``nursery`` (the connection's) and end
    when it is cancelled. ``run`` must not raise except on cancellation, and must set
    ``item.scope`` to ``None`` once nothing of the item should be cancelled any more;
    ``cancelled`` finishes an item whose scope was cancelled while it ran."""

    def __init__(
        self,
        nursery: trio.Nursery,
        run: Callable[[R], Awaitable[None]],
        cancelled: Callable[[R], Awaitable[None]],
    ) -> None:
        self._nursery = nursery
        self._run = run
        self._cancelled = cancelled
        self._ready: deque[R] = deque()
        self._parked: list[trio.lowlevel.Task] = []
        self._deadlines: DeadlineHeap[Runnable] = DeadlineHeap(_finished, _expire, nursery)
        self.active = 0
        # Parked workers kept: the most streams that ran at once (a peer gateway's link
        # carries ~100: ending the extra workers after each burst respawned 0.7 per request).
        self._keep = MIN_IDLE_WORKERS

    def submit(self, item: R, timeout: float, now: float) -> None:
        """Run ``item`` soon; after ``timeout`` seconds (``math.inf``: never) from ``now``
        (the trio clock, read by the caller with no checkpoint since: once per read of a
        connection, not per request) it is marked ``timed_out`` and its scope cancelled."""
        self._ready.append(item)
        self.active += 1
        if self.active > self._keep:
            self._keep = min(self.active, MAX_IDLE_WORKERS)
        if self._parked:
            wake(self._parked.pop())
        else:
            self._nursery.start_soon(self._worker)
        if timeout != math.inf:
            self._deadlines.push(item, now + timeout, self.active)

    async def _worker(self) -> None:
        """Items run inside one cancel scope per worker (``item.scope`` while it runs): a
        new scope only after a cancellation, as a scope cannot be re-entered (entering one
        per item cost ~5 µs). A cancelled item gets ``cancelled(item)`` outside the scope."""
        while True:
            running: list[R] = []
            try:
                with trio.CancelScope() as scope:
                    if not await self._serve(scope, running):
                        return  # enough are parked already: a burst's extra workers end
            finally:
                if running:  # interrupted: by our scope, or by the connection's end
                    item = running.pop()
                    try:
                        if scope.cancelled_caught:
                            await self._cancelled(item)
                    finally:
                        item.finished = True
                        self.active -= 1

    async def _serve(self, scope: trio.CancelScope, running: list[R]) -> bool:
        """Run items until ``scope`` was cancelled (True: the caller enters a fresh one)
        or this worker should end (False). The item being run is in ``running``."""
        ready = self._ready
        parked = self._parked
        # Parking: wait until submit() wakes this worker (or the connection's end cancels
        # it), here rather than in a method of its own, with one abort function per worker:
        # every task step of a worker resumes (and suspends) through each coroutine frame
        # it waits in, and a closure per wait was one more object per request.
        task = trio.lowlevel.current_task()
        wait = trio.lowlevel.wait_task_rescheduled

        def abort(_raise_cancel: object) -> trio.lowlevel.Abort:
            parked.remove(task)
            return trio.lowlevel.Abort.SUCCEEDED

        while True:
            if ready:
                item = ready.popleft()
                item.scope = scope
                running.append(item)
                await self._run(item)
                running.pop()
                item.scope = None
                item.finished = True
                self.active -= 1
                if scope.cancel_called:  # came after the item's last checkpoint
                    return True
            elif len(parked) >= self._keep:
                return False
            else:
                parked.append(task)
                await wait(abort)

    def cancel_at(self, item: Deadline, deadline: float) -> None:
        """Cancel ``item.scope`` at ``deadline`` (the trio clock) unless ``item.finished``
        was set by then. Cheaper than moving a cancel scope's own deadline (~1.8 µs each
        time in trio): a heap push, and the timer wakes only for an earlier deadline."""
        self._deadlines.push(item, deadline, self.active)


def _finished(item: Runnable) -> bool:
    return item.finished


async def _expire(item: Runnable) -> None:
    item.timed_out = True
    if item.scope is not None:
        item.scope.cancel()
