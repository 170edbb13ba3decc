"""Store contract for snapshots stored with a shared section (schema version 3), both backends:
a rebuild's N snapshots share one trust-bundle section, which is stored once."""

from __future__ import annotations

import pytest

from federation.store import InvalidDocument, SplitJsonObject, Store, open_store


async def _sections(store: Store) -> int:
    row = await store._read(  # type: ignore[attr-defined]
        lambda tx: tx.one("SELECT COUNT(*) FROM snapshot_sections")
    )
    return int(row[0])


async def test_split_documents_read_back_whole_and_share_one_section(
    store: Store, store_url: str
) -> None:
    tail = ',"bundles":{"td":"' + "k" * 5000 + '"}}'
    docs = {c: SplitJsonObject('{"routing":"' + c + '"', tail) for c in ("a", "b", "c")}
    assert await store.put_snapshots(docs, now=1.0) == {"a": 1, "b": 1, "c": 1}
    assert await _sections(store) == 1
    async with open_store(store_url) as other_replica:
        got = await other_replica.get_snapshot("b")
    assert got is not None
    assert (got.version, got.document) == (1, '{"routing":"b"' + tail)


async def test_sections_no_snapshot_uses_are_dropped(store: Store) -> None:
    old = SplitJsonObject('{"n":1', ',"bundles":{"v":1}}')
    await store.put_snapshots({"a": old, "b": old}, now=1.0)
    new = SplitJsonObject('{"n":2', ',"bundles":{"v":2}}')
    await store.put_snapshots({"a": new}, now=2.0)
    assert await _sections(store) == 2  # b still uses the old one
    await store.put_snapshots({"b": '{"n":3}'}, now=3.0)  # a whole document: no section
    assert await _sections(store) == 1
    got = await store.get_snapshot("b")
    assert got is not None and (got.version, got.document) == (2, '{"n":3}')
    got = await store.get_snapshot("a")
    assert got is not None and got.document == '{"n":2,"bundles":{"v":2}}'


async def test_a_split_document_that_is_not_an_object_is_refused(store: Store) -> None:
    with pytest.raises(InvalidDocument):
        await store.put_snapshots({"a": SplitJsonObject("[1", "]")}, now=1.0)
    with pytest.raises(InvalidDocument):
        await store.put_snapshots({"a": SplitJsonObject('{"a":"\ud800"', "}")}, now=1.0)
    assert await store.get_snapshot("a") is None
