"""The snapshots a replica serves, and who is told when one changes.

:class:`ServedSet` is the publisher's window to the streams and long polls: one served
snapshot per cluster, :meth:`ServedSet.wait_newer` for a poll, :meth:`ServedSet.watching` for a
stream (a callback, no task of its own). Only the publisher writes (:meth:`ServedSet.publish`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import trio

from federation.service.served import ServedSnapshot


class ServedSet:
    """Per cluster: the served snapshot, its long-poll event and its watchers' callbacks."""

    def __init__(self) -> None:
        self._served: dict[str, ServedSnapshot] = {}
        self._events: dict[str, trio.Event] = {}
        self._watchers: dict[str, list[Callable[[], None]]] = {}

    def current(self, cluster: str) -> ServedSnapshot | None:
        return self._served.get(cluster)

    def digests(self) -> dict[str, str]:
        """Every served snapshot's content digest, by cluster (what a rebuild compares)."""
        return {name: served.digest for name, served in self._served.items()}

    def load(self, served: Mapping[str, ServedSnapshot]) -> None:
        """Serve what the store held at start-up (nobody watches yet: no one is woken)."""
        self._served.update(served)

    def publish(self, cluster: str, served: ServedSnapshot) -> None:
        """Serve ``served`` for ``cluster`` and wake its watchers and pollers."""
        self._served[cluster] = served
        for wake in self._watchers.get(cluster, ()):
            wake()
        event = self._events.pop(cluster, None)
        if event is not None:
            event.set()

    async def wait_newer(self, cluster: str, after: int, timeout_s: float) -> ServedSnapshot | None:
        """The cluster's snapshot as soon as its version differs from ``after`` (newer, or lower
        after a store reset), or ``None`` after ``timeout_s``. Cancellation just stops waiting."""
        with trio.move_on_after(timeout_s):
            while True:
                served = self._served.get(cluster)
                if served is not None and served.version != after:
                    return served
                await self._events.setdefault(cluster, trio.Event()).wait()
        return None

    @contextmanager
    def watching(self, cluster: str, wake: Callable[[], None]) -> Iterator[None]:
        """Within the block, call ``wake()`` each time ``cluster``'s served version changes,
        right when it does: how a stream learns of a version without a task of its own.
        ``wake`` runs in the publishing task: it must only set an event (no blocking, no
        raising). Read the version with :meth:`current`."""
        watchers = self._watchers.setdefault(cluster, [])
        watchers.append(wake)
        try:
            yield
        finally:
            watchers.remove(wake)
            if not watchers:
                del self._watchers[cluster]
