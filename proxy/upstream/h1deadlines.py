"""Response-head deadlines of HTTP/1.1 exchanges on kept-alive connections, in one heap.

Why not ``trio.move_on_after`` around each exchange: a cancel scope with a deadline costs
~7 µs per request, as much as the rest of the pool's work. Here the exchange registers its
deadline (a heap push) and one timer task per pools closes the connection of an exchange
whose deadline passed; the exchange then sees its I/O fail, finds :attr:`H1Watch.expired`
and reports the timeout (the connection is never reused).
"""

from __future__ import annotations

import heapq
import math

import trio


class H1Watch:
    """One exchange's deadline: ``done`` once the response head arrived (or the exchange
    ended otherwise); ``expired`` once the timer closed ``stream`` because of it."""

    __slots__ = ("done", "expired", "stream")

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.done = False
        self.expired = False


class H1Deadlines:
    """The timer task starts on first use in ``nursery`` and runs until it is cancelled."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._heap: list[tuple[float, int, H1Watch]] = []
        self._seq = 0
        self._wake = trio.Event()
        self._wake_at = math.inf  # when the timer wakes by itself
        self._started = False
        self._live = 0

    def watch(self, stream: trio.abc.Stream, deadline: float) -> H1Watch:
        """Close ``stream`` at ``deadline`` (``trio.current_time()`` clock) unless the
        returned watch is marked ``done`` first. Never checkpoints."""
        heap = self._heap
        if len(heap) > 2 * self._live + 64:
            # Finished entries stuck behind a live one: drop them all (amortized O(1)).
            heap[:] = [e for e in heap if not e[2].done]
            heapq.heapify(heap)
            self._live = len(heap)
        if not self._started:
            self._started = True
            self._nursery.start_soon(self._timer)
        elif deadline < self._wake_at:  # not merely an empty heap (after a compaction)
            self._wake.set()
        entry = H1Watch(stream)
        self._seq += 1
        self._live += 1
        heapq.heappush(heap, (deadline, self._seq, entry))
        return entry

    def finished(self, entry: H1Watch) -> None:
        if not entry.done:
            entry.done = True
            self._live -= 1

    async def _timer(self) -> None:
        heap = self._heap
        while True:
            while heap and heap[0][2].done:
                heapq.heappop(heap)
            if heap and heap[0][0] <= trio.current_time():
                entry = heapq.heappop(heap)[2]
                self.finished(entry)
                entry.expired = True
                await trio.aclose_forcefully(entry.stream)  # the exchange's I/O now fails
                continue
            self._wake = trio.Event()
            self._wake_at = heap[0][0] if heap else math.inf
            with trio.move_on_at(self._wake_at):
                await self._wake.wait()
