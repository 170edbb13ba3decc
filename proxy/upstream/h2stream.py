"""Per-stream state of an HTTP/2 client stream, fed by the connection's reader task."""

from __future__ import annotations

from collections import deque

import trio

from proxy.deadlines import DeadlineHeap
from proxy.errors import UpstreamError
from proxy.resume import wake
from proxy.upstream.models import Headers

# What ``readable`` and ``window`` start as: an Event already set, which nobody waits on.
# Whoever waits installs a fresh Event first (``H2ClientConnection``), so the reader's
# ``set()`` before that is a no-op; two Events per stream cost ~0.6 µs, and a stream whose
# response body comes with its headers waits for neither.
_NOBODY_WAITS = trio.Event()
_NOBODY_WAITS.set()


class H2Stream:
    """State of one client stream, fed by the reader task. The response head is waited for
    with :meth:`wait_answer` (one task at a time); ``readable`` and ``window`` must be
    replaced by a fresh Event before a wait."""

    __slots__ = (
        "answered",
        "ended",
        "error",
        "headers",
        "inbox",
        "local_ended",
        "pump_scope",
        "readable",
        "released",
        "status",
        "stream_id",
        "timed_out",
        "trailers",
        "waiter",
        "window",
    )

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id
        # Response headers arrived, or the stream failed or timed out (never reset to
        # False). The task waiting for that is parked directly, woken by ``answer()``: a
        # trio.Event (its ParkingLot, unpark_all and the Event itself) cost ~1.5 µs more per
        # request for a handover that always has at most one waiter.
        self.answered = False
        self.waiter: trio.lowlevel.Task | None = None
        self.readable = _NOBODY_WAITS
        self.window = _NOBODY_WAITS
        self.status = 0
        self.headers: Headers = []
        self.trailers: Headers = []
        self.inbox: deque[tuple[bytes, int]] = deque()
        self.ended = False
        self.local_ended = False
        self.error: UpstreamError | None = None
        self.released = False
        self.pump_scope: trio.CancelScope | None = None
        self.timed_out = False  # no response headers by the deadline given to the connection

    def answer(self) -> None:
        """Mark the stream answered and wake the task in :meth:`wait_answer` (idempotent)."""
        self.answered = True
        task = self.waiter
        if task is not None:
            self.waiter = None
            wake(task)

    async def wait_answer(self) -> None:
        """Return once :meth:`answer` was called; a checkpoint either way (cancellable,
        like ``trio.Event.wait``). One waiting task at a time."""
        if self.answered:
            await trio.lowlevel.checkpoint()
            return
        if self.waiter is not None:
            raise trio.BusyResourceError("another task waits for this stream's answer")
        task = trio.lowlevel.current_task()
        self.waiter = task

        def abort(_raise_cancel: object) -> trio.lowlevel.Abort:
            self.waiter = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def wake(self) -> None:
        self.readable.set()
        self.answer()
        self.window.set()


def header_deadlines() -> DeadlineHeap[H2Stream]:
    """The deadlines of a connection's streams awaiting response headers: one that passes
    first marks its stream ``timed_out`` and answered (its waiter wakes and gives up)."""
    return DeadlineHeap(_answered, _headers_timed_out)


def _answered(s: H2Stream) -> bool:
    return s.answered or s.released


async def _headers_timed_out(s: H2Stream) -> None:
    s.timed_out = True
    s.answer()
