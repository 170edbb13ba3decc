"""What a snapshot stream's gateway sent and the federation has not stored yet.

The stream's reader validates each up message and hands it to a :class:`StreamInbound`; its
:meth:`~StreamInbound.run` task stores them through the service, one batch at a time (each
write joins the store's group commit with every other stream's). The reader never waits for
the store, so a store that is slow for a while (a rebuild writing 1,000 snapshots holds it for
a second or more) costs a stream nothing but that wait:

* **Reports coalesce.** While one is being stored, a newer report replaces the one waiting: a
  report is the cluster's whole health state and the store keeps only the latest, so storing
  the older one first would change nothing anyone reads. A stream is therefore never more than
  one report behind its gateway, however slow the store, and each stored report renews the
  lease as of the moment it *arrived*, not the moment the store got to it: a gateway that
  reports on time never has its lease lapse because the federation was busy. The ``id`` of a
  superseded report is answered ``ok`` with the report that superseded it (it carried the
  newer state of the same cluster), or with its error.
* **ACKs are stored in order**, each of them (a NACK also appends a timeline event); once
  :data:`MAX_QUEUED_ACKS` wait besides the batch being stored, the reader waits too
  (backpressure, bounded memory).

Trio-thread only. Cancelling :meth:`~StreamInbound.run` drops what is still waiting (a write
in flight may still be stored, as for any cancelled store write).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from federation.model.api import Ack, HealthReport
from federation.service.core import FederationService
from federation.service.errors import ServiceError
from federation.store import StoreError

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
    """The queue between one stream's reader and the store (see the module docstring)."""

    def __init__(
        self, service: FederationService, cluster: str, answered: Answered, failed: Failed
    ) -> None:
        self._service = service
        self._cluster = cluster
        self._answered = answered
        self._failed = failed
        self._report: _WaitingReport | None = None
        self._acks: list[tuple[int | None, Ack]] = []
        self._queued = trio.Event()
        self._room = trio.Event()
        self._closing = False
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
        self._service.report_arrived(self._cluster, received_at)  # renews the lease now
        self._queued.set()

    async def put_ack(self, message_id: int | None, ack: Ack) -> None:
        """Queue an ACK/NACK; waits while :data:`MAX_QUEUED_ACKS` are already waiting."""
        while len(self._acks) >= MAX_QUEUED_ACKS:
            await self._room.wait()
        self._acks.append((message_id, ack))
        self._queued.set()

    def close(self) -> None:
        """Nothing more will be queued: :meth:`run` returns once everything is stored."""
        self._closing = True
        self._queued.set()

    async def run(self) -> None:
        """Store what is queued, batch after batch, until :meth:`close` and drained."""
        while True:
            report, self._report = self._report, None
            acks, self._acks = self._acks, []
            if report is None and not acks:
                if self._closing:
                    return
                await self._queued.wait()
                self._queued = trio.Event()
                continue
            self._room.set()
            self._room = trio.Event()
            if report is not None:
                await self._store_report(report)
            for message_id, ack in acks:
                await self._store_ack(message_id, ack)

    async def _store_report(self, waiting: _WaitingReport) -> None:
        try:
            await self._service.record_report(
                self._cluster, waiting.report, waiting.raw, received_at=waiting.received_at
            )
        except (ServiceError, StoreError) as err:
            self._failed(err, waiting.ids)
            return
        if waiting.ids:
            self._answered(waiting.ids)

    async def _store_ack(self, message_id: int | None, ack: Ack) -> None:
        ids = [] if message_id is None else [message_id]
        try:
            await self._service.record_ack(self._cluster, ack)
        except (ServiceError, StoreError) as err:
            self._failed(err, ids)
            return
        if ids:
            self._answered(ids)
