"""A stream's up messages wait for the store without holding the stream back: reports
coalesce (the latest wins, renewing the lease as of its arrival), ACKs are stored in order."""

from __future__ import annotations

from typing import Any, cast

import trio
import trio.testing

from federation.model.api import Ack, HealthReport
from federation.service.core import FederationService
from federation.service.errors import ConflictError, ServiceError
from federation.service.stream_inbound import MAX_QUEUED_ACKS, StreamInbound
from federation.store import StoreError, StoreUnavailable


class SlowStore:
    """Stands in for the service's store writes: each waits until ``release`` is set."""

    def __init__(self) -> None:
        self.release = trio.Event()
        self.reports: list[tuple[str, int, float | None]] = []
        self.acks: list[int] = []
        self.fail: Exception | None = None
        self.arrivals: list[float] = []

    def report_arrived(self, cluster: str, at: float) -> None:
        self.arrivals.append(at)

    async def record_report(
        self, cluster: str, report: HealthReport, raw: str, *, received_at: float | None = None
    ) -> None:
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        self.reports.append((cluster, report.sequence, received_at))

    async def record_ack(self, cluster: str, ack: Ack) -> None:
        await self.release.wait()
        if ack.version > 10:
            raise ConflictError(f"version: {ack.version} was never served", reason="x")
        self.acks.append(ack.version)


class Answers:
    def __init__(self) -> None:
        self.ok: list[int] = []
        self.errors: list[tuple[str, int | None]] = []

    def answered(self, ids: list[int]) -> None:
        self.ok.extend(ids)

    def failed(self, err: ServiceError | StoreError, ids: list[int]) -> None:
        self.errors.extend((type(err).__name__, i) for i in (ids or [None]))


def _inbound(store: SlowStore, answers: Answers) -> StreamInbound:
    service = cast(FederationService, cast(Any, store))
    return StreamInbound(service, "aws", answers.answered, answers.failed)


def _report(sequence: int) -> tuple[HealthReport, str]:
    report = HealthReport(sequence=sequence, sent_at=float(sequence))
    return report, report.model_dump_json()


async def test_reports_arriving_while_the_store_is_busy_coalesce_to_the_latest() -> None:
    store, answers = SlowStore(), Answers()
    inbound = _inbound(store, answers)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(inbound.run)
        inbound.put_report(1, *_report(1), received_at=100.0)
        await trio.testing.wait_all_tasks_blocked()  # report 1 is being stored
        for sequence in (2, 3, 4):  # the store is still busy: they replace each other
            inbound.put_report(sequence, *_report(sequence), received_at=100.0 + sequence)
        store.release.set()
        inbound.close()
    assert store.reports == [("aws", 1, 100.0), ("aws", 4, 104.0)]  # leases as of arrival
    assert store.arrivals == [100.0, 102.0, 103.0, 104.0]  # each renewed the lease on arrival
    assert answers.ok == [1, 2, 3, 4]  # 2 and 3 answered with the report that replaced them
    assert inbound.superseded == 2
    assert answers.errors == []


async def test_a_failed_write_answers_every_report_it_carried() -> None:
    store, answers = SlowStore(), Answers()
    store.fail = StoreUnavailable("database is locked")
    inbound = _inbound(store, answers)
    inbound.put_report(None, *_report(1), received_at=1.0)
    inbound.put_report(7, *_report(2), received_at=2.0)
    inbound.put_report(8, *_report(3), received_at=3.0)
    store.release.set()
    inbound.close()
    await inbound.run()
    assert store.reports == []
    assert answers.errors == [("StoreUnavailable", 7), ("StoreUnavailable", 8)]
    assert answers.ok == []


async def test_acks_are_all_stored_in_order_and_refusals_answered() -> None:
    store, answers = SlowStore(), Answers()
    inbound = _inbound(store, answers)
    store.release.set()
    for version in (3, 11, 4):
        await inbound.put_ack(version, Ack(version=version, ok=True))
    await inbound.put_ack(None, Ack(version=12, ok=True))
    inbound.close()
    await inbound.run()
    assert store.acks == [3, 4]
    assert answers.ok == [3, 4]
    assert answers.errors == [("ConflictError", 11), ("ConflictError", None)]


async def test_the_reader_waits_once_too_many_acks_wait_for_the_store() -> None:
    store, answers = SlowStore(), Answers()
    inbound = _inbound(store, answers)
    queued = 0

    async def reader() -> None:
        nonlocal queued
        for version in range(MAX_QUEUED_ACKS * 2 + 2):
            await inbound.put_ack(None, Ack(version=version % 10, ok=True))
            queued += 1
        inbound.close()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(inbound.run)
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        # one batch taken by the blocked write, MAX_QUEUED_ACKS more waiting: the reader waits
        assert queued == 2 * MAX_QUEUED_ACKS
        store.release.set()
    assert len(store.acks) == MAX_QUEUED_ACKS * 2 + 2
    assert answers.errors == []
