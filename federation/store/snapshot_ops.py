"""Snapshot operations as synchronous transaction bodies, shared by every SQL backend.

A snapshot row holds one of three stored forms (schema v1, v3, v4):

* ``document`` alone: the whole JSON text;
* ``document`` + ``section``: the head, followed by one shared section (a
  :class:`~federation.store.documents.SplitJsonObject`'s tail);
* ``document`` + ``sections``: a recipe (:func:`~federation.store.composed.recipe`) over the
  space-separated shared sections it names (a :class:`ComposedJsonObject`).

Shared sections live once each in ``snapshot_sections`` (keyed by SHA-256) and go when no
snapshot names them any more. ``digest`` keeps the writer's content digest, if it gave one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, MutableMapping, Sequence

from federation.store.composed import (
    ComposedJsonObject,
    DocumentPart,
    SharedText,
    TextSlice,
    from_recipe,
    recipe,
)
from federation.store.documents import SplitJsonObject
from federation.store.records import ComposedSnapshot, SnapshotRecord
from federation.store.transaction import Row, Transaction

StoredDocument = str | SplitJsonObject | ComposedJsonObject
#: ``(document, section, sections, digest)`` as the columns of ``snapshots`` keep them.
_Row = tuple[str, str | None, str | None, str | None]

_UPSERT = (
    "INSERT INTO snapshots (cluster, version, document, created_at, section, sections, digest) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (cluster) DO UPDATE SET "
    "version = excluded.version, document = excluded.document, "
    "created_at = excluded.created_at, section = excluded.section, "
    "sections = excluded.sections, digest = excluded.digest"
)


def put_snapshot(tx: Transaction, *, cluster: str, document: str, now: float) -> int:
    row = tx.one("SELECT version FROM snapshots WHERE cluster = ?", (cluster,))
    version = 1 if row is None else int(row[0]) + 1
    tx.run(_UPSERT, (cluster, version, document, now, None, None, None))
    tx.changed(f"snapshot:{cluster}")
    return version


class _Sections:
    """The shared sections of one write: each distinct one inserted once, the rest known."""

    def __init__(self, tx: Transaction) -> None:
        self._tx = tx
        self.stored = {str(row[0]) for row in tx.all("SELECT digest FROM snapshot_sections")}
        self._tails: dict[int, str] = {}  # by id(tail): one rebuild shares one tail object

    def add(self, digest: str, body: str) -> str:
        if digest not in self.stored:
            self._tx.run(
                "INSERT INTO snapshot_sections (digest, body) VALUES (?, ?)", (digest, body)
            )
            self.stored.add(digest)
        return digest

    def row_of(self, document: StoredDocument) -> _Row:
        if isinstance(document, str):
            return document, None, None, None
        if isinstance(document, SplitJsonObject):
            digest = self._tails.get(id(document.tail))
            if digest is None:
                digest = hashlib.sha256(document.tail.encode()).hexdigest()
                self._tails[id(document.tail)] = digest
            return document.head, self.add(digest, document.tail), None, None
        text, sections = recipe(document)
        names = " ".join(self.add(s.digest, s.text) for s in sections)
        return text, None, names, document.digest

    def drop_unused(self) -> None:
        used: set[str] = set()
        rows = self._tx.all(
            "SELECT section, sections FROM snapshots "
            "WHERE section IS NOT NULL OR sections IS NOT NULL"
        )
        for section, sections in rows:
            if section is not None:
                used.add(str(section))
            if sections:
                used.update(str(sections).split())
        stale = sorted(self.stored - used)
        if stale:
            self._tx.run_many(
                "DELETE FROM snapshot_sections WHERE digest = ?", [(d,) for d in stale]
            )
            self.stored -= set(stale)


def put_snapshots(
    tx: Transaction, *, documents: Mapping[str, StoredDocument], now: float
) -> dict[str, int]:
    """Every document upserted with the next version of its cluster, in one batch; shared
    sections stored once per distinct text; sections no snapshot refers to any more go."""
    names = sorted(documents)
    current = {str(r[0]): int(r[1]) for r in tx.all("SELECT cluster, version FROM snapshots")}
    sections = _Sections(tx)
    versions = {name: current.get(name, 0) + 1 for name in names}
    rows = []
    for name in names:
        document, section, shared, digest = sections.row_of(documents[name])
        rows.append((name, versions[name], document, now, section, shared, digest))
    tx.run_many(_UPSERT, rows)
    tx.changed_many([f"snapshot:{name}" for name in names])
    sections.drop_unused()
    return versions


def get_snapshot(tx: Transaction, *, cluster: str) -> SnapshotRecord | None:
    row = tx.one(
        "SELECT s.cluster, s.version, s.document, s.created_at, x.body, s.sections, s.digest "
        "FROM snapshots s LEFT JOIN snapshot_sections x ON x.digest = s.section "
        "WHERE s.cluster = ?",
        (cluster,),
    )
    if row is None:
        return None
    document = str(row[2])
    if row[5] is not None:
        digests = str(row[5]).split()
        bodies = {}
        for digest in set(digests):  # a few sections (peers, weights, bundles): one read each
            found = tx.one("SELECT body FROM snapshot_sections WHERE digest = ?", (digest,))
            bodies[digest] = "" if found is None else str(found[0])
        document = from_recipe(document, [bodies[d] for d in digests])
    elif row[4] is not None:
        document += str(row[4])
    content_digest = None if row[6] is None else str(row[6])
    return SnapshotRecord(str(row[0]), int(row[1]), document, float(row[3]), content_digest)


#: Shared sections a store keeps between reads (a rebuild writes ~3: peers, weights, bundles).
SECTIONS_KEPT = 16


_PARTS_SELECT = "SELECT cluster, version, document, created_at, sections, digest FROM snapshots"
#: Above this many clusters a batch read scans every snapshot row once instead of one each.
_SCAN_ABOVE = 8


def get_snapshot_parts(
    tx: Transaction, *, cluster: str, sections: MutableMapping[str, SharedText]
) -> SnapshotRecord | ComposedSnapshot | None:
    """:func:`get_snapshot`, but a composed snapshot comes as its parts over the shared texts
    in ``sections`` (by digest; read once, then reused while current)."""
    return get_snapshots_parts(tx, clusters=[cluster], sections=sections).get(cluster)


def get_snapshots_parts(
    tx: Transaction, *, clusters: Sequence[str], sections: MutableMapping[str, SharedText]
) -> dict[str, SnapshotRecord | ComposedSnapshot]:
    """:func:`get_snapshot_parts` of each of ``clusters`` that has a snapshot, in one read."""
    wanted = set(clusters)
    if len(wanted) > _SCAN_ABOVE:
        rows = [row for row in tx.all(_PARTS_SELECT) if row[0] in wanted]
    else:
        found = (tx.one(_PARTS_SELECT + " WHERE cluster = ?", (c,)) for c in sorted(wanted))
        rows = [row for row in found if row is not None]
    out: dict[str, SnapshotRecord | ComposedSnapshot] = {}
    used: set[str] = set()
    for row in rows:
        cluster = str(row[0])
        if row[4] is None:  # stored whole or split (schema v1/v3 forms)
            record = get_snapshot(tx, cluster=cluster)
            if record is not None:
                out[cluster] = record
            continue
        out[cluster] = _composed_of(tx, row, sections, used)
    for stale in [d for d in sections if d not in used][: max(0, len(sections) - SECTIONS_KEPT)]:
        sections.pop(stale, None)
    return out


def _composed_of(
    tx: Transaction, row: Row, sections: MutableMapping[str, SharedText], used: set[str]
) -> ComposedSnapshot:
    digests = str(row[4]).split()
    texts: dict[str, SharedText] = {}  # this read's own view: other reads may evict meanwhile
    for digest in digests:
        text = sections.get(digest)
        if text is None:
            found = tx.one("SELECT body FROM snapshot_sections WHERE digest = ?", (digest,))
            text = sections[digest] = SharedText("" if found is None else str(found[0]))
        texts[digest] = text
    used.update(digests)
    parts: list[DocumentPart] = []
    for item in json.loads(str(row[2])):
        if isinstance(item, str):
            parts.append(item)
        else:
            index, start, end = item
            parts.append(TextSlice(texts[digests[index]], start, end))
    content_digest = None if row[5] is None else str(row[5])
    return ComposedSnapshot(str(row[0]), int(row[1]), float(row[3]), content_digest, tuple(parts))
