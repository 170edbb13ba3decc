"""Writes at the end of the scheduler's batch: coalesced output without a writer task's turn.

trio runs every runnable task once (a batch), then polls for I/O. Connections whose tasks
queued output during a batch register here; just before that poll, :class:`BatchEnd` calls
each one's ``write_pending()``, which writes without blocking what the kernel takes. So the
responses of every stream that finished in a batch leave together (one write per connection),
and they leave *now*: waking a writer task instead would send them only in its turn of the
next batch, after whatever else that batch runs (the next burst's requests, say) — two more
passes through the scheduler per write, and the latency of a whole batch.

The hook is a trio :class:`~trio.abc.Instrument` (``before_io_wait``), installed once per
``trio.run`` on first use. ``write_pending`` must not block and must not raise; a connection
that cannot write without waiting hands the rest to its own writer task.
"""

from __future__ import annotations

import logging
from typing import Protocol

import trio

log = logging.getLogger(__name__)


class PendingWriter(Protocol):
    """What :class:`BatchEnd` flushes."""

    last_write_batch: int  # the batch whose end last wrote it; NEVER_WRITTEN at first

    def write_pending(self) -> bool:
        """Write what is queued without blocking; never raises. True when the rest was
        handed to a task (made runnable) instead."""


NEVER_WRITTEN = -(1 << 40)
# A connection written within this many batches waits while the loop is busy (see
# BatchEnd.before_io_wait).
HOLD_BATCHES = 2


class BatchEnd(trio.abc.Instrument):
    """The per-run registry of connections with output queued during the current batch."""

    def __init__(self) -> None:
        self._pending: dict[int, PendingWriter] = {}
        #: the current batch's number (counts the loop's polls for I/O; also read by
        #: :mod:`proxy.upstream.h1idle`, whose stale-check answers last one batch)
        self.batch = 0

    def add(self, writer: PendingWriter) -> None:
        self._pending[id(writer)] = writer

    def before_io_wait(self, timeout: float) -> None:
        """Write the pending connections. One that was written in the last
        :data:`HOLD_BATCHES` batches waits while tasks are runnable right away (the next batch
        runs without waiting for I/O): a connection busy every batch is written every third
        one, about as rarely as a writer task did (one write per batch cost ~8 % more CPU per
        request under full load), while a response to a connection that was quiet — a burst's
        first — leaves at once, even when other connections' work is queued behind it. When
        the loop is about to sleep everything goes: waiting could add only latency."""
        self.batch += 1
        if not self._pending:
            return
        batch = self.batch
        # trio polls without waiting (timeout 0) exactly when tasks are runnable (or a
        # deadline is already due: the next batch comes at once either way). Reading
        # ``current_statistics().tasks_runnable`` instead cost 3.4 µs per call.
        busy = timeout <= 0
        writers = list(self._pending.values())
        self._pending.clear()
        handed = False
        for writer in writers:
            if busy and batch - writer.last_write_batch <= HOLD_BATCHES:
                self._pending[id(writer)] = writer
                continue
            writer.last_write_batch = batch
            try:
                handed = writer.write_pending() or handed
            except Exception:  # an instrument that raises is removed: never let that happen
                log.exception("end-of-batch write failed")
        if handed and timeout > 0:
            # A write handed to a writer task made it runnable, but trio computed this
            # poll's timeout before calling us: it would sleep (until other I/O or the next
            # deadline) with that task waiting. Make the poll return at once.
            trio.lowlevel.current_trio_token().run_sync_soon(_nothing)


def _nothing() -> None:
    pass


_BATCH_END: trio.lowlevel.RunVar[BatchEnd] = trio.lowlevel.RunVar("isthmus_batch_end")


def batch_end() -> BatchEnd:
    """This run's :class:`BatchEnd`, installed on first use (call from inside ``trio.run``)."""
    try:
        return _BATCH_END.get()
    except LookupError:
        hook = BatchEnd()
        trio.lowlevel.add_instrument(hook)
        _BATCH_END.set(hook)
        return hook
