"""The :class:`~federation.store.protocol.Store` contract implemented once over SQL.

Backends subclass :class:`SqlStore` and provide how a transaction body runs (``_read`` /
``_write``), how changes reach subscribers, and leader election. Validation happens here,
before any transaction opens, so a refused argument stores nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from functools import cached_property, partial
from typing import TypeVar

from federation.store import operations as ops
from federation.store import snapshot_ops
from federation.store.composed import ComposedJsonObject, SharedText, check_composed
from federation.store.documents import (
    SplitJsonObject,
    document_text,
    optional_text,
    require_count,
    require_name,
    require_text,
    require_time,
    split_document,
)
from federation.store.errors import InvalidDocument
from federation.store.event_log import log_event
from federation.store.group_commit import GroupCommit
from federation.store.protocol import JsonDocument, LeaderWork
from federation.store.records import (
    AckState,
    BundleRecord,
    Change,
    ClusterRecord,
    ComposedSnapshot,
    DecisionRecord,
    EventRecord,
    PruneCounts,
    ReportRecord,
    ServiceRecord,
    SnapshotRecord,
    WorldRecords,
)
from federation.store.transaction import Transaction

T = TypeVar("T")
Body = Callable[[Transaction], T]


class SqlStore(ABC):
    """Shared implementation of every Store method; see the Protocol for each contract."""

    backend_name = "sql"

    @property
    def backend(self) -> str:
        return self.backend_name

    @abstractmethod
    async def _read(self, body: Body[T]) -> T:
        """Run ``body`` in a worker thread on a connection (no write lock)."""

    @abstractmethod
    async def _write(self, body: Body[T]) -> T:
        """Run ``body`` in one serialised write transaction, commit, announce its changes."""

    async def _write_batch(self, body: Body[T]) -> T:
        """A write someone waits on for latency (a group commit of reports or ACKs; a rebuild's
        snapshots, which every push of the rebuild waits for): :meth:`_write`, unless the
        backend has a cheaper way to commit it."""
        return await self._write(body)

    @abstractmethod
    def changes(self) -> AbstractAsyncContextManager[AsyncIterator[Change]]: ...

    @abstractmethod
    async def run_as_leader(
        self, name: str, work: LeaderWork, *, retry_interval: float = 0.5
    ) -> None: ...

    # -- join tokens

    async def create_join_token(
        self, token_id: str, cluster: str, secret_hash: str, expires_at: float
    ) -> None:
        body = partial(
            ops.create_join_token,
            token_id=require_name(token_id, "token_id"),
            cluster=require_name(cluster, "cluster"),
            secret_hash=require_name(secret_hash, "secret_hash"),
            expires_at=require_time(expires_at, "expires_at"),
        )
        await self._write(body)

    async def check_join_token(self, token_id: str, secret_hash: str, now: float) -> str:
        body = partial(
            ops.check_join_token,
            token_id=require_name(token_id, "token_id"),
            secret_hash=require_name(secret_hash, "secret_hash"),
            now=require_time(now, "now"),
        )
        return await self._read(body)

    async def consume_join_token(self, token_id: str, secret_hash: str, now: float) -> str:
        body = partial(
            ops.consume_join_token,
            token_id=require_name(token_id, "token_id"),
            secret_hash=require_name(secret_hash, "secret_hash"),
            now=require_time(now, "now"),
        )
        return await self._write(body)

    # -- clusters

    async def upsert_cluster(self, cluster: ClusterRecord) -> None:
        if not isinstance(cluster, ClusterRecord):
            raise InvalidDocument("cluster", f"expected a ClusterRecord, got {type(cluster)}")
        require_name(cluster.name, "cluster.name")
        require_name(cluster.trust_domain, "cluster.trust_domain")
        await self._write(partial(ops.upsert_cluster, cluster=cluster))

    async def get_cluster(self, name: str) -> ClusterRecord | None:
        return await self._read(partial(ops.get_cluster, name=name))

    async def list_clusters(self) -> list[ClusterRecord]:
        return await self._read(ops.list_clusters)

    async def cluster_of_trust_domain(self, trust_domain: str) -> str | None:
        return await self._read(partial(ops.cluster_of_trust_domain, trust_domain=trust_domain))

    async def prune(self, *, events_before: float, tokens_before: float) -> PruneCounts:
        body = partial(
            ops.prune,
            events_before=require_time(events_before, "events_before"),
            tokens_before=require_time(tokens_before, "tokens_before"),
        )
        return await self._write(body)

    # -- bundles

    async def put_bundle(
        self,
        trust_domain: str,
        sequence: int,
        bundle: JsonDocument,
        signed_update: str | None,
        now: float,
    ) -> BundleRecord:
        body = partial(
            ops.put_bundle,
            trust_domain=require_name(trust_domain, "trust_domain"),
            sequence=require_count(sequence, "sequence"),
            bundle=document_text(bundle, "bundle"),
            signed_update=optional_text(signed_update, "signed_update"),
            now=require_time(now, "now"),
        )
        return await self._write(body)

    async def get_bundle(self, trust_domain: str) -> BundleRecord | None:
        return await self._read(partial(ops.get_bundle, trust_domain=trust_domain))

    async def list_bundles(self) -> list[BundleRecord]:
        return await self._read(ops.list_bundles)

    async def bundle_history(self, trust_domain: str, limit: int = 10) -> list[BundleRecord]:
        limit = require_count(limit, "limit")
        return await self._read(partial(ops.bundle_history, trust_domain=trust_domain, limit=limit))

    # -- reports

    async def record_report(self, cluster: str, report: JsonDocument, received_at: float) -> None:
        item = (
            require_name(cluster, "cluster"),
            document_text(report, "report"),
            require_time(received_at, "received_at"),
        )
        await self._report_commits.submit(item)

    async def record_reports(self, reports: Sequence[tuple[str, JsonDocument, float]]) -> None:
        items = [
            (
                require_name(cluster, "cluster"),
                document_text(report, "report"),
                require_time(received_at, "received_at"),
            )
            for cluster, report, received_at in reports
        ]
        if items:
            await self._report_commits.submit_many(items)

    @cached_property
    def _report_commits(self) -> GroupCommit[tuple[str, str, float]]:
        """Reports arriving while one commits are committed together (one transaction)."""
        return GroupCommit(self._flush_reports)

    async def _flush_reports(self, reports: list[tuple[str, str, float]]) -> None:
        """Store a batch of validated reports in one write (backends may override)."""
        await self._write_batch(partial(ops.record_reports, reports=reports))

    async def get_report(self, cluster: str) -> ReportRecord | None:
        return await self._read(partial(ops.get_report, cluster=cluster))

    async def list_reports(self) -> list[ReportRecord]:
        return await self._read(ops.list_reports)

    async def read_world(self) -> WorldRecords:
        return await self._read(ops.read_world)

    # -- snapshots

    async def put_snapshot(self, cluster: str, document: JsonDocument, now: float) -> int:
        body = partial(
            snapshot_ops.put_snapshot,
            cluster=require_name(cluster, "cluster"),
            document=document_text(document, "document"),
            now=require_time(now, "now"),
        )
        return await self._write(body)

    async def put_snapshots(
        self,
        documents: Mapping[str, JsonDocument | SplitJsonObject | ComposedJsonObject],
        now: float,
    ) -> dict[str, int]:
        if not isinstance(documents, Mapping):
            raise InvalidDocument("documents", "expected a mapping of cluster name to document")
        texts = {
            require_name(cluster, "documents key"): _snapshot_document(
                doc, f"documents[{cluster!r}]"
            )
            for cluster, doc in documents.items()
        }
        if not texts:
            return {}
        body = partial(snapshot_ops.put_snapshots, documents=texts, now=require_time(now, "now"))
        return await self._write_batch(body)  # every push of a rebuild waits for this commit

    async def get_snapshot(self, cluster: str) -> SnapshotRecord | None:
        return await self._read(partial(snapshot_ops.get_snapshot, cluster=cluster))

    async def get_snapshot_parts(self, cluster: str) -> SnapshotRecord | ComposedSnapshot | None:
        body = partial(
            snapshot_ops.get_snapshot_parts, cluster=cluster, sections=self._read_sections
        )
        return await self._read(body)

    async def get_snapshots_parts(
        self, clusters: Sequence[str]
    ) -> dict[str, SnapshotRecord | ComposedSnapshot]:
        names = [require_name(c, "clusters item") for c in clusters]
        if not names:
            return {}
        body = partial(
            snapshot_ops.get_snapshots_parts, clusters=names, sections=self._read_sections
        )
        return await self._read(body)

    @cached_property
    def _read_sections(self) -> dict[str, SharedText]:
        return {}

    async def record_ack(
        self, cluster: str, version: int, ok: bool, error: str | None, at: float
    ) -> None:
        await self._ack_commits.submit(_ack_item(cluster, version, ok, error, at))

    async def record_acks(self, acks: Sequence[tuple[str, int, bool, str | None, float]]) -> None:
        items = [_ack_item(*ack) for ack in acks]
        if items:
            await self._ack_commits.submit_many(items)

    @cached_property
    def _ack_commits(self) -> GroupCommit[ops.AckItem]:
        """ACKs arriving while one commits are committed together (one transaction)."""

        async def flush(acks: list[ops.AckItem]) -> None:
            await self._write_batch(partial(ops.record_acks, acks=acks))

        return GroupCommit(flush)

    async def get_ack_state(self, cluster: str) -> AckState:
        return await self._read(partial(ops.get_ack_state, cluster=cluster))

    # -- services and decisions

    async def put_service(self, name: str, policy: JsonDocument, now: float) -> None:
        body = partial(
            ops.put_service,
            name=require_name(name, "name"),
            policy=document_text(policy, "policy"),
            now=require_time(now, "now"),
        )
        await self._write(body)

    async def delete_service(self, name: str) -> bool:
        return await self._write(partial(ops.delete_service, name=require_name(name, "name")))

    async def list_services(self) -> list[ServiceRecord]:
        return await self._read(ops.list_services)

    async def put_decisions(self, decisions: Mapping[str, JsonDocument], now: float) -> None:
        if not isinstance(decisions, Mapping):
            raise InvalidDocument("decisions", "expected a mapping of service name to document")
        texts = {
            require_name(service, "decisions key"): document_text(doc, f"decisions[{service!r}]")
            for service, doc in decisions.items()
        }
        await self._write(partial(ops.put_decisions, decisions=texts, now=require_time(now, "now")))

    async def list_decisions(self) -> list[DecisionRecord]:
        return await self._read(ops.list_decisions)

    # -- cluster recoveries (failback windows)

    async def record_recovery(self, cluster: str, at: float) -> None:
        body = partial(
            ops.record_recovery,
            cluster=require_name(cluster, "cluster"),
            at=require_time(at, "at"),
        )
        await self._write(body)

    async def list_recoveries(self) -> dict[str, float]:
        return await self._read(ops.list_recoveries)

    # -- events

    async def append_event(self, kind: str, subject: str, detail: JsonDocument, at: float) -> int:
        text = document_text(detail, "detail")
        body = partial(
            ops.append_event,
            kind=require_name(kind, "kind"),
            subject=require_text(subject, "subject"),
            detail=text,
            at=require_time(at, "at"),
        )
        event_id = await self._write(body)
        log_event(event_id, kind, subject, text, at)  # the one place every event passes
        return event_id

    async def append_events(
        self, events: Sequence[tuple[str, str, JsonDocument, float]]
    ) -> list[int]:
        rows = [
            (
                require_name(kind, f"events[{i}].kind"),
                require_text(subject, f"events[{i}].subject"),
                document_text(detail, f"events[{i}].detail"),
                require_time(at, f"events[{i}].at"),
            )
            for i, (kind, subject, detail, at) in enumerate(events)
        ]
        if not rows:
            return []
        ids = await self._write(partial(ops.append_events, events=rows))
        for event_id, (kind, subject, text, at) in zip(ids, rows, strict=True):
            log_event(event_id, kind, subject, text, at)
        return ids

    async def list_events(self, after_id: int = 0, limit: int = 100) -> list[EventRecord]:
        after_id = require_count(after_id, "after_id")
        limit = require_count(limit, "limit")
        return await self._read(partial(ops.list_events, after_id=after_id, limit=limit))

    # -- change feed catch-up

    async def changes_since(self, seq: int) -> list[Change]:
        return await self._read(partial(ops.changes_since, seq=require_count(seq, "seq")))

    async def current_change_seq(self) -> int:
        return await self._read(ops.current_change_seq)


def _snapshot_document(value: object, field: str) -> snapshot_ops.StoredDocument:
    if isinstance(value, ComposedJsonObject):
        return check_composed(value, field)
    return split_document(value, field)


def _ack_item(cluster: str, version: int, ok: bool, error: str | None, at: float) -> ops.AckItem:
    """One validated ACK/NACK for the group commit (``InvalidDocument`` if not valid)."""
    if not isinstance(ok, bool):
        raise InvalidDocument("ok", f"expected a bool, got {ok!r}")
    return (
        require_name(cluster, "cluster"),
        require_count(version, "version"),
        ok,
        optional_text(error, "error"),
        require_time(at, "at"),
    )
