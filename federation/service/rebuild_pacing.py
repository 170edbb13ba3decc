"""When the leader rebuilds after joins: a burst of joins makes one rebuild, promptly.

Every join changes every cluster's snapshot (a new peer), so a rebuild per join costs O(N) each
and O(N²) for a fleet joining: at 700 clusters joins had slowed to 100 per 11 s. The pacer holds
a join-triggered rebuild while joins keep arriving (``quiet_s`` apart), for at most
``max_delay`` — the last rebuild's duration, clamped to ``[floor_s, cap_s]`` — so rebuilding
takes at most about half the leader's time during a long burst, and the first cluster of a
burst still gets its snapshot within ``floor_s`` of a pause. Health changes are not held.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio


@dataclass
class JoinPacer:
    """Owned by one leader loop (trio task); :meth:`note_join` may be called from any task."""

    quiet_s: float = 0.05
    floor_s: float = 0.1
    cap_s: float = 2.0
    #: how long the last rebuild took (wall-clock seconds), set by the leader loop
    last_rebuild_s: float = 0.0
    joined: bool = False

    def note_join(self) -> None:
        """A cluster joined (or re-registered): the next rebuild may wait for the burst."""
        self.joined = True

    def max_delay(self) -> float:
        return min(self.cap_s, max(self.floor_s, self.last_rebuild_s))

    async def settle(self) -> float:
        """Wait while joins keep arriving, at most :meth:`max_delay`; at once if none is
        pending. Returns the seconds waited. Cancellation just stops waiting."""
        if not self.joined:
            return 0.0
        started = trio.current_time()
        deadline = started + self.max_delay()
        while self.joined:
            self.joined = False
            remaining = deadline - trio.current_time()
            if remaining <= 0:
                break
            await trio.sleep(min(self.quiet_s, remaining))
        self.joined = False
        return trio.current_time() - started
