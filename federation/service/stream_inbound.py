"""What the snapshot streams' gateways sent and the federation has not stored yet.

Each stream's reader validates its up messages and hands them to its :class:`StreamInbound`;
ONE :class:`InboundSink` task per federation process stores what every stream queued, pass
after pass: all the ACKs waiting in one store call, all the reports waiting in another (each
joins the store's group commit, shared with the REST endpoints' writes), then answers each
stream (its writer sends the ``ok``). A task per stream used to do this, which cost three
scheduler steps per message (that task waking, the group commit's turn, its ``done``); the sink
takes one step per pass, however many streams it serves. The reader never waits for the store,
so a store that is slow for a while (a rebuild writing 1,000 snapshots holds it for a second or
more) costs a stream nothing but that wait:

* **Reports coalesce.** While one is being stored, a newer report replaces the one waiting: a
  report is the cluster's whole health state and the store keeps only the latest, so storing
  the older one first would change nothing anyone reads. A stream is therefore never more than
  one report behind its gateway, however slow the store, and each stored report renews the
  lease as of the moment it *arrived*, not the moment the store got to it: a gateway that
  reports on time never has its lease lapse because the federation was busy. The ``id`` of a
  superseded report is answered ``ok`` with the report that superseded it (it carried the
  newer state of the same cluster), or with its error.
* **ACKs are stored in order**, each of them (a NACK also appends a timeline event); once
  :data:`MAX_QUEUED_ACKS` wait besides the pass being stored, the reader waits too
  (backpressure, bounded memory). An ACK is durable before its ``ok`` is answered.

What a stream queued is stored even if the stream ends before the sink gets to it. Trio-thread
only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from federation.model.api import Ack, HealthReport
from federation.service.core import FederationService
from federation.service.errors import ServiceError
from federation.store import StoreError

_log = logging.getLogger(__name__)

#: ACKs read and not yet stored before the reader waits for the store.
MAX_QUEUED_ACKS = 64

#: ``answered(ids)``: these up messages were stored (answer ``ok`` to each).
Answered = Callable[[list[int]], None]
#: ``failed(error, ids)``: storing them failed (answer each with the error; ``[]``: no ids).
Failed = Callable[[ServiceError | StoreError, list[int]], None]


@dataclass
class _WaitingReport:
    report: HealthReport
    raw: str
    received_at: float
    #: ids of this report and of the waiting ones it replaced, oldest first
    ids: list[int] = field(default_factory=list)


class StreamInbound:
    """One stream's queue to the :class:`InboundSink` (see the module docstring)."""

    def __init__(self, sink: InboundSink, cluster: str, answered: Answered, failed: Failed):
        self.cluster = cluster
        self.answered = answered
        self.failed = failed
        self._sink = sink
        self._report: _WaitingReport | None = None
        self._acks: list[tuple[int | None, Ack]] = []
        self._room = trio.Event()
        self._closing = False
        self._in_flight = False
        self._drained = trio.Event()
        #: reports replaced by a newer one before they were stored (for tests and measuring)
        self.superseded = 0

    def put_report(
        self, message_id: int | None, report: HealthReport, raw: str, received_at: float
    ) -> None:
        """Queue ``report`` (``raw``: its JSON as sent), replacing a waiting one."""
        ids: list[int] = []
        if self._report is not None:
            ids = self._report.ids
            self.superseded += 1
        if message_id is not None:
            ids.append(message_id)
        self._report = _WaitingReport(report, raw, received_at, ids)
        self._sink.service.report_arrived(self.cluster, received_at)  # renews the lease now
        self._sink.queue(self)

    async def put_ack(self, message_id: int | None, ack: Ack) -> None:
        """Queue an ACK/NACK; waits while :data:`MAX_QUEUED_ACKS` are already waiting."""
        while len(self._acks) >= MAX_QUEUED_ACKS:
            await self._room.wait()
        self.put_ack_now(message_id, ack)

    def has_room(self, acks: int) -> bool:
        """Whether ``acks`` more ACKs may be queued now without waiting (:meth:`put_ack_now`)."""
        return len(self._acks) + acks <= MAX_QUEUED_ACKS

    def put_ack_now(self, message_id: int | None, ack: Ack) -> None:
        """Queue an ACK/NACK the caller made room for (:meth:`has_room`)."""
        self._acks.append((message_id, ack))
        self._sink.queue(self)

    def close(self) -> None:
        """Nothing more will be queued (:meth:`wait_stored` then returns once it is stored)."""
        self._closing = True
        self._check_drained()

    async def wait_stored(self) -> None:
        """After :meth:`close`: return once everything queued was stored (or refused)."""
        await self._drained.wait()

    def take(self) -> tuple[_WaitingReport | None, list[tuple[int | None, Ack]]]:
        """The sink takes what waits (until :meth:`stored`); the reader may queue again."""
        report, self._report = self._report, None
        acks, self._acks = self._acks, []
        self._in_flight = True
        self._room.set()
        self._room = trio.Event()
        return report, acks

    def stored(self) -> None:
        """What the sink took last was stored (or refused, each message answered)."""
        self._in_flight = False
        self._check_drained()

    def _check_drained(self) -> None:
        if self._closing and not self._in_flight and self._report is None and not self._acks:
            self._drained.set()


class InboundSink:
    """Stores every stream's queued reports and ACKs, one pass at a time, in one task
    (:meth:`run`, started with the server). Streams are refused while it is not running."""

    def __init__(self, service: FederationService) -> None:
        self.service = service
        self._ready: dict[StreamInbound, None] = {}
        self._queued = trio.Event()
        self.running = False
        #: passes stored (for tests and measuring)
        self.passes = 0

    def stream(self, cluster: str, answered: Answered, failed: Failed) -> StreamInbound:
        """A new stream's queue: ``answered``/``failed`` are called from the sink's task."""
        return StreamInbound(self, cluster, answered, failed)

    def queue(self, inbound: StreamInbound) -> None:
        self._ready[inbound] = None
        self._queued.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Store what streams queue, pass after pass, until cancelled (what is still queued
        then is dropped; a write in flight may still be stored)."""
        self.running = True
        try:
            task_status.started()
            while True:
                await self._queued.wait()
                self._queued = trio.Event()
                ready, self._ready = self._ready, {}
                taken = [(inbound, *inbound.take()) for inbound in ready]
                await self._store_pass(taken)
                for inbound, _, _ in taken:
                    inbound.stored()
                self.passes += 1
        finally:
            self.running = False

    async def _store_pass(
        self, taken: list[tuple[StreamInbound, _WaitingReport | None, list[tuple[int | None, Ack]]]]
    ) -> None:
        await self._store_acks(
            [(inbound, mid, ack) for inbound, _, acks in taken for mid, ack in acks]
        )
        await self._store_reports(
            [(inbound, report) for inbound, report, _ in taken if report is not None]
        )

    async def _store_reports(self, reports: list[tuple[StreamInbound, _WaitingReport]]) -> None:
        if not reports:
            return
        items = [(i.cluster, w.report, w.raw, w.received_at) for i, w in reports]
        try:
            await self.service.record_reports(items)
        except Exception as err:  # answered: a bug must not end every stream
            for inbound, waiting in reports:
                inbound.failed(_answerable(err), waiting.ids)
            return
        for inbound, waiting in reports:
            if waiting.ids:
                inbound.answered(waiting.ids)

    async def _store_acks(self, acks: list[tuple[StreamInbound, int | None, Ack]]) -> None:
        service = self.service
        valid: list[tuple[StreamInbound, int | None, Ack]] = []
        for inbound, message_id, ack in acks:
            ids = [] if message_id is None else [message_id]
            if service.publisher.current(inbound.cluster) is None:  # nothing served yet: rare
                try:
                    await service.record_ack(inbound.cluster, ack)  # refuses it, or stores it
                except Exception as err:  # answered: a bug must not end every stream
                    inbound.failed(_answerable(err), ids)
                else:
                    inbound.answered(ids)
                continue
            refusal = service.ack_refusal(inbound.cluster, ack)
            if refusal is not None:
                inbound.failed(refusal, ids)
            else:
                valid.append((inbound, message_id, ack))
        if not valid:
            return
        try:
            await service.record_acks([(inbound.cluster, ack) for inbound, _, ack in valid])
        except Exception as err:  # answered: a bug must not end every stream
            for inbound, message_id, _ in valid:
                inbound.failed(_answerable(err), [] if message_id is None else [message_id])
            return
        for inbound, message_id, _ in valid:
            if message_id is not None:
                inbound.answered([message_id])


def _answerable(err: Exception) -> ServiceError | StoreError:
    """``err`` as a stream can answer it: a service or store error as it is; anything else (a
    bug: the sink serves every stream, so it must not end) logged and answered as internal."""
    if isinstance(err, ServiceError | StoreError):
        return err
    _log.error("storing snapshot stream messages failed", exc_info=err)
    return ServiceError(f"internal error storing the message: {err!r}", reason="internal")
