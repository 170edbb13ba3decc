"""Streams' up messages wait for the store without holding the streams back: reports
coalesce (the latest wins, renewing the lease as of its arrival), ACKs are stored in order, and
ONE sink task stores what every stream queued, a pass at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

import trio
import trio.testing

from federation.model.api import Ack, HealthReport
from federation.service.core import FederationService
from federation.service.errors import ConflictError, ServiceError
from federation.service.stream_inbound import MAX_QUEUED_ACKS, InboundSink, StreamInbound
from federation.store import StoreError, StoreUnavailable


@dataclass
class _Served:
    version: int


class SlowStore:
    """Stands in for the service's store writes: each waits until ``release`` is set. Every
    cluster was served version 10."""

    def __init__(self) -> None:
        self.release = trio.Event()
        self.reports: list[tuple[str, int, float | None]] = []
        self.acks: list[int] = []
        self.fail: Exception | None = None
        self.arrivals: list[float] = []
        self.report_writes = 0
        self.ack_writes = 0
        self.publisher = self

    def current(self, cluster: str) -> _Served:
        return _Served(10)

    def report_arrived(self, cluster: str, at: float) -> None:
        self.arrivals.append(at)

    async def record_reports(self, reports: Sequence[tuple[str, HealthReport, str, float]]) -> None:
        await self.release.wait()
        self.report_writes += 1
        if self.fail is not None:
            raise self.fail
        self.reports.extend((cluster, report.sequence, at) for cluster, report, _, at in reports)

    def ack_refusal(self, cluster: str, ack: Ack) -> ConflictError | None:
        if ack.version > 10:
            return ConflictError(f"version: {ack.version} was never served", reason="x")
        return None

    async def record_acks(self, acks: Sequence[tuple[str, Ack]]) -> None:
        await self.release.wait()
        self.ack_writes += 1
        self.acks.extend(ack.version for _, ack in acks)


class Answers:
    def __init__(self) -> None:
        self.ok: list[int] = []
        self.errors: list[tuple[str, int | None]] = []

    def answered(self, ids: list[int]) -> None:
        self.ok.extend(ids)

    def failed(self, err: ServiceError | StoreError, ids: list[int]) -> None:
        self.errors.extend((type(err).__name__, i) for i in (ids or [None]))


@asynccontextmanager
async def _sink(store: SlowStore) -> AsyncIterator[InboundSink]:
    sink = InboundSink(cast(FederationService, cast(Any, store)))
    async with trio.open_nursery() as nursery:
        await nursery.start(sink.run)
        yield sink
        nursery.cancel_scope.cancel()


def _inbound(sink: InboundSink, answers: Answers, cluster: str = "aws") -> StreamInbound:
    return sink.stream(cluster, answers.answered, answers.failed)


async def _drain(inbound: StreamInbound) -> None:
    inbound.close()
    with trio.fail_after(5):
        await inbound.wait_stored()


def _report(sequence: int) -> tuple[HealthReport, str]:
    report = HealthReport(sequence=sequence, sent_at=float(sequence))
    return report, report.model_dump_json()


async def test_reports_arriving_while_the_store_is_busy_coalesce_to_the_latest() -> None:
    store, answers = SlowStore(), Answers()
    async with _sink(store) as sink:
        inbound = _inbound(sink, answers)
        inbound.put_report(1, *_report(1), received_at=100.0)
        await trio.testing.wait_all_tasks_blocked()  # report 1 is being stored
        for sequence in (2, 3, 4):  # the store is still busy: they replace each other
            inbound.put_report(sequence, *_report(sequence), received_at=100.0 + sequence)
        store.release.set()
        await _drain(inbound)
    assert store.reports == [("aws", 1, 100.0), ("aws", 4, 104.0)]  # leases as of arrival
    assert store.arrivals == [100.0, 102.0, 103.0, 104.0]  # each renewed the lease on arrival
    assert answers.ok == [1, 2, 3, 4]  # 2 and 3 answered with the report that replaced them
    assert inbound.superseded == 2
    assert answers.errors == []


async def test_a_failed_write_answers_every_report_it_carried() -> None:
    store, answers = SlowStore(), Answers()
    store.fail = StoreUnavailable("database is locked")
    async with _sink(store) as sink:
        inbound = _inbound(sink, answers)
        inbound.put_report(None, *_report(1), received_at=1.0)
        inbound.put_report(7, *_report(2), received_at=2.0)
        inbound.put_report(8, *_report(3), received_at=3.0)
        store.release.set()
        await _drain(inbound)
    assert store.reports == []
    assert answers.errors == [("StoreUnavailable", 7), ("StoreUnavailable", 8)]
    assert answers.ok == []


async def test_acks_are_all_stored_in_order_and_refusals_answered() -> None:
    store, answers = SlowStore(), Answers()
    store.release.set()
    async with _sink(store) as sink:
        inbound = _inbound(sink, answers)
        for version in (3, 11, 4):
            await inbound.put_ack(version, Ack(version=version, ok=True))
        await inbound.put_ack(None, Ack(version=12, ok=True))
        await _drain(inbound)
    assert store.acks == [3, 4]
    assert answers.ok == [3, 4]
    assert answers.errors == [("ConflictError", 11), ("ConflictError", None)]


async def test_the_reader_waits_once_too_many_acks_wait_for_the_store() -> None:
    store, answers = SlowStore(), Answers()
    queued = 0

    async def reader(inbound: StreamInbound) -> None:
        nonlocal queued
        for version in range(MAX_QUEUED_ACKS * 2 + 2):
            await inbound.put_ack(None, Ack(version=version % 10, ok=True))
            queued += 1
        await _drain(inbound)

    async with _sink(store) as sink, trio.open_nursery() as nursery:
        nursery.start_soon(reader, _inbound(sink, answers))
        await trio.testing.wait_all_tasks_blocked()
        # one batch taken by the blocked write, MAX_QUEUED_ACKS more waiting: the reader waits
        assert queued == 2 * MAX_QUEUED_ACKS
        store.release.set()
    assert len(store.acks) == MAX_QUEUED_ACKS * 2 + 2
    assert answers.errors == []


async def test_one_pass_stores_every_streams_messages_in_one_write_each() -> None:
    store, answers = SlowStore(), Answers()
    async with _sink(store) as sink:
        streams = [_inbound(sink, answers, f"c{i}") for i in range(50)]
        for index, inbound in enumerate(streams):  # all queued before the sink runs
            inbound.put_report(index, *_report(1), received_at=1.0)
            await inbound.put_ack(1000 + index, Ack(version=index % 10, ok=True))
        store.release.set()
        for inbound in streams:
            await _drain(inbound)
    assert (store.report_writes, store.ack_writes) == (1, 1)
    assert [cluster for cluster, _, _ in store.reports] == [f"c{i}" for i in range(50)]
    assert sorted(answers.ok) == [*range(50), *range(1000, 1050)]
    assert sink.passes == 1


async def test_what_a_stream_queued_is_stored_after_it_closed_only_once_stored() -> None:
    store, answers = SlowStore(), Answers()
    async with _sink(store) as sink:
        inbound = _inbound(sink, answers)
        await inbound.put_ack(5, Ack(version=5, ok=True))
        inbound.close()
        await trio.testing.wait_all_tasks_blocked()
        assert not inbound._drained.is_set()  # the ACK is being stored: not drained yet
        store.release.set()
        with trio.fail_after(5):
            await inbound.wait_stored()
    assert (store.acks, answers.ok) == ([5], [5])


async def test_an_unexpected_failure_is_answered_and_the_sink_goes_on() -> None:
    store, answers = SlowStore(), Answers()
    store.fail = RuntimeError("a bug")
    store.release.set()
    async with _sink(store) as sink:
        inbound = _inbound(sink, answers)
        inbound.put_report(1, *_report(1), received_at=1.0)
        await trio.testing.wait_all_tasks_blocked()
        assert answers.errors == [("ServiceError", 1)]  # answered as an internal error
        store.fail = None
        inbound.put_report(2, *_report(2), received_at=2.0)
        await _drain(inbound)
        assert sink.running
    assert answers.ok == [2]
