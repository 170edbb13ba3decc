"""A request body that can be sent more than once while it is small.

The engine forwards the client's body as the upstream pulls it, keeping a copy of the first
``limit`` bytes. A retry replays that copy and then continues with the client's stream; once
more than ``limit`` bytes went upstream the copy is dropped and the body is no longer
replayable (memory stays bounded whatever the body size). Nor is it once an attempt was
interrupted while waiting for the client's next bytes (the client's stream may be finished by
that: a retry must not send a truncated body as if it were complete).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

DEFAULT_REPLAY_LIMIT = 64 * 1024


class ReplayableBody:
    """Wraps the client's body iterator; :meth:`attempt` gives one iterator per try.

    Only one attempt's iterator may be consumed at a time (attempts are sequential).
    """

    __slots__ = ("_kept", "_kept_bytes", "_limit", "_source", "exhausted", "pulled", "replayable")

    def __init__(self, source: AsyncIterator[bytes], limit: int = DEFAULT_REPLAY_LIMIT) -> None:
        self._source = source
        self._limit = limit
        self._kept: list[bytes] = []
        self._kept_bytes = 0
        self.pulled = 0
        self.exhausted = False
        self.replayable = True

    @property
    def started(self) -> bool:
        """True once any byte was handed to an upstream."""
        return self.pulled > 0

    async def attempt(self) -> AsyncIterator[bytes]:
        """The body for one try: the kept prefix, then the rest of the client's stream."""
        for chunk in list(self._kept):
            yield chunk
        while not self.exhausted:
            try:
                chunk = await self._source.__anext__()
            except StopAsyncIteration:
                self.exhausted = True
                return
            except BaseException:
                # Interrupted inside the source (cancelled, or the client left): an async
                # generator source is finished by that, so a replay could not continue it.
                self._unreplayable()
                raise
            self.pulled += len(chunk)
            if self.replayable:
                if self._kept_bytes + len(chunk) <= self._limit:
                    self._kept.append(chunk)
                    self._kept_bytes += len(chunk)
                else:
                    self._unreplayable()
            yield chunk

    def _unreplayable(self) -> None:
        self.replayable = False
        self._kept.clear()
