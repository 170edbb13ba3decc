"""In-process fan-out of :class:`Change` notifications to subscribers.

Each subscriber keeps its undelivered changes coalesced by topic (insertion-ordered, so
delivery stays ``seq``-ascending): a slow reader costs memory bounded by the number of topics,
never an unbounded queue, and never blocks the publisher.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import trio

from federation.store.records import Change


class _Subscription:
    def __init__(self) -> None:
        self.pending: dict[str, int] = {}
        self.wakeup = trio.Event()

    def offer(self, change: Change) -> None:
        # Re-inserting moves the topic to the end, keeping pending ordered by seq.
        self.pending.pop(change.topic, None)
        self.pending[change.topic] = change.seq
        self.wakeup.set()

    def __aiter__(self) -> _Subscription:
        return self

    async def __anext__(self) -> Change:
        while not self.pending:
            await self.wakeup.wait()
            self.wakeup = trio.Event()
        topic = next(iter(self.pending))
        seq = self.pending.pop(topic)
        return Change(seq=seq, topic=topic)


class ChangeHub:
    """Delivers published changes to every current subscriber. Trio-thread only."""

    def __init__(self) -> None:
        self._subscribers: set[_Subscription] = set()
        self.last_seq = 0

    def publish(self, changes: Iterable[Change]) -> None:
        """Hand ``changes`` to every subscriber (never blocks, never raises)."""
        for change in changes:
            self.last_seq = max(self.last_seq, change.seq)
            for subscriber in self._subscribers:
                subscriber.offer(change)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[Change]]:
        """Register a subscriber for the duration of the block; yields its iterator."""
        subscription = _Subscription()
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)
