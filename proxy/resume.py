"""Waking a task we parked ourselves, without a new outcome object per wake.

``trio.lowlevel.reschedule(task)`` builds an ``outcome.Value(None)`` for every wake; the woken
task unwraps it once (``Value`` refuses a second unwrap, so one cannot be shared). The
listener's workers and the HTTP/2 upstream's response handover wake a task or two per
request: :data:`RESUME` is one stateless outcome, unwrapped to ``None`` any number of times
(``Value(None)`` plus its unwrap: ~0.6 µs; this: ~0.03 µs).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import TypeVar

import outcome
import trio

_T = TypeVar("_T")


class _Resume(outcome.Outcome[None]):
    """Resume with ``None``; stateless, so any number of tasks may be woken with it."""

    __slots__ = ()

    def unwrap(self) -> None:
        return None

    def send(self, gen: Generator[_T, None, object]) -> _T:
        return gen.send(None)

    async def asend(self, agen: AsyncGenerator[_T, None]) -> _T:
        return await agen.asend(None)


RESUME = _Resume()


def wake(task: trio.lowlevel.Task) -> None:
    """``trio.lowlevel.reschedule(task)`` for a task parked in
    ``trio.lowlevel.wait_task_rescheduled``: it resumes with ``None``."""
    trio.lowlevel.reschedule(task, RESUME)
