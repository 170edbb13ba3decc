"""Deadlines of many items in one heap, watched by one timer task.

Why not a cancel scope with a deadline per request: in trio that costs ~7 µs per request (and
moving one's deadline ~1.8 µs), as much as the rest of a hop's bookkeeping. Here an item's
deadline is a heap push, and one timer task expires the items whose deadline passed unless
they finished first. The timer is woken only for a deadline earlier than the one it sleeps
until (testing the heap's head instead woke it whenever the heap had just been emptied, i.e.
on every burst). Finished entries leave the heap when they reach its head, or all at once
when they outnumber the live ones (amortized O(1)).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import trio

T = TypeVar("T")


class DeadlineHeap(Generic[T]):
    """``finished(item)``: the item no longer needs its deadline; ``expire(item)``: called by
    the timer when a deadline passes first. With ``nursery``, the timer starts there on the
    first :meth:`push`; without, the owner runs :meth:`run`."""

    __slots__ = ("_expire", "_finished", "_heap", "_nursery", "_seq", "_wake", "_wake_at")

    def __init__(
        self,
        finished: Callable[[T], bool],
        expire: Callable[[T], Awaitable[None]],
        nursery: trio.Nursery | None = None,
    ) -> None:
        self._finished = finished
        self._expire = expire
        self._nursery = nursery
        self._heap: list[tuple[float, int, T]] = []
        self._seq = 0
        self._wake = trio.Event()
        self._wake_at = math.inf  # when the timer wakes by itself

    def push(self, item: T, deadline: float, live: int) -> None:
        """Expire ``item`` at ``deadline`` (the trio clock) unless it finished by then.
        ``live``: how many pushed items are not finished (bounds the finished ones kept).
        Never checkpoints."""
        heap = self._heap
        if len(heap) > 2 * live + 64:
            finished = self._finished
            heap[:] = [e for e in heap if not finished(e[2])]
            heapq.heapify(heap)
        if self._nursery is not None:
            self._nursery.start_soon(self.run)
            self._nursery = None
        elif deadline < self._wake_at:
            self._wake.set()
        self._seq += 1
        heapq.heappush(heap, (deadline, self._seq, item))

    def drop_finished(self) -> None:
        """Pop the finished items at the head (an owner may call it when one finishes)."""
        heap, finished = self._heap, self._finished
        while heap and finished(heap[0][2]):
            heapq.heappop(heap)

    async def run(self) -> None:
        """The timer: runs until cancelled."""
        heap = self._heap
        while True:
            self.drop_finished()
            if heap and heap[0][0] <= trio.current_time():
                await self._expire(heapq.heappop(heap)[2])
                continue
            self._wake = trio.Event()
            self._wake_at = heap[0][0] if heap else math.inf
            with trio.move_on_at(self._wake_at):
                await self._wake.wait()
