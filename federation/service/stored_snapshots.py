"""Snapshots read back from the store, served as their writer stored them.

A replica serves snapshots it did not build: on start (what the store serves now) and, when it
is not the leader, every version the leader stores. A rebuild stores N snapshots at once, so
:class:`StoredSnapshots` reads the ones it is told of in batches (one store read for all that
arrived meanwhile), as parts over shared texts the store reads once
(:meth:`~federation.store.Store.get_snapshots_parts`), and builds their served form without
parsing or joining them when they have the canonical form a rebuild writes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import trio

from federation.model.api import Snapshot
from federation.service.served import ServedSnapshot
from federation.service.snapshot_bytes import (
    SectionCache,
    SnapshotEncoder,
    composed_content,
    stored_content,
)
from federation.service.snapshots import snapshot_digest
from federation.store import ComposedSnapshot, SnapshotRecord, Store, StoreError

_RETRY_S = 0.5
_log = logging.getLogger(__name__)


class StoredSnapshots:
    """Reads stored snapshots for one replica. Event-loop only (its caches are not shared)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._sections = SectionCache()
        self._encoder = SnapshotEncoder()
        self._pending: set[str] = set()
        self._arrived = trio.Event()

    def served(self, stored: SnapshotRecord | ComposedSnapshot) -> ServedSnapshot:
        """``stored`` as served: neither parsed nor joined when it has the canonical form a
        rebuild writes and its digest was stored with it (what a rebuild compares, so an
        unchanged snapshot keeps its version); anything else is parsed and re-encoded."""
        content = None
        if isinstance(stored, ComposedSnapshot):
            content = composed_content(stored.parts, self._sections)
        if content is None:
            content = stored_content(stored.document, self._sections)
        digest = stored.digest
        if content is None or digest is None:
            snapshot = Snapshot.model_validate_json(stored.document)
            content = content or self._encoder.content(snapshot)
            digest = digest or snapshot_digest(snapshot)
        return ServedSnapshot(stored.version, digest, None, stored.created_at, content=content)

    async def read(self, clusters: Iterable[str]) -> dict[str, ServedSnapshot]:
        """The served form of what the store holds for each of ``clusters`` (those without a
        snapshot are left out). Raises ``StoreError``."""
        stored = await self._store.get_snapshots_parts(sorted(clusters))
        return {name: self.served(record) for name, record in stored.items()}

    def note(self, cluster: str) -> None:
        """Another replica stored a new snapshot of ``cluster``: read it in the next batch."""
        self._pending.add(cluster)
        self._arrived.set()

    async def follow(self, deliver: Callable[[str, ServedSnapshot], None]) -> None:
        """Read the noted clusters in batches and ``deliver`` each snapshot read; a store error
        is logged and the batch retried shortly. Never returns; cancel to stop."""
        while True:
            await self._arrived.wait()
            self._arrived = trio.Event()
            batch, self._pending = self._pending, set()
            try:
                for name, served in (await self.read(batch)).items():
                    deliver(name, served)
            except StoreError as err:
                _log.warning("cannot load %d new snapshots, retrying: %s", len(batch), err)
                self._pending |= batch
                await trio.sleep(_RETRY_S)
                self._arrived.set()
