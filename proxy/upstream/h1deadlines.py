"""Response-head deadlines of HTTP/1.1 exchanges on kept-alive connections, in one heap.

Why not ``trio.move_on_after`` around each exchange: a cancel scope with a deadline costs
~7 µs per request, as much as the rest of the pool's work. Here the exchange registers its
deadline (a heap push) and one timer task per pools closes the connection of an exchange
whose deadline passed; the exchange then sees its I/O fail, finds :attr:`H1Watch.expired`
and reports the timeout (the connection is never reused).
"""

from __future__ import annotations

import trio

from proxy.deadlines import DeadlineHeap


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
        self._heap: DeadlineHeap[H1Watch] = DeadlineHeap(_done, self._expire, nursery)
        self._live = 0

    def watch(self, stream: trio.abc.Stream, deadline: float) -> H1Watch:
        """Close ``stream`` at ``deadline`` (``trio.current_time()`` clock) unless the
        returned watch is marked ``done`` first. Never checkpoints."""
        entry = H1Watch(stream)
        self._heap.push(entry, deadline, self._live)
        self._live += 1
        return entry

    def finished(self, entry: H1Watch) -> None:
        if not entry.done:
            entry.done = True
            self._live -= 1

    async def _expire(self, entry: H1Watch) -> None:
        self.finished(entry)
        entry.expired = True
        await trio.aclose_forcefully(entry.stream)  # the exchange's I/O now fails


def _done(entry: H1Watch) -> bool:
    return entry.done
