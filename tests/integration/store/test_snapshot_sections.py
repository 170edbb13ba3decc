"""Store contract for snapshots stored with a shared section (schema version 3), both backends:
a rebuild's N snapshots share one trust-bundle section, which is stored once."""

from __future__ import annotations

import pytest
import trio

from federation.store import (
    ComposedJsonObject,
    ComposedSnapshot,
    InvalidDocument,
    SharedText,
    SnapshotRecord,
    SplitJsonObject,
    Store,
    TextSlice,
    open_store,
)


async def _sections(store: Store) -> int:
    row = await store._read(lambda tx: tx.one("SELECT COUNT(*) FROM snapshot_sections"))
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


def _composed(name: str, peers: SharedText, bundles: SharedText, digest: str) -> ComposedJsonObject:
    """``name``'s routing: the shared peer list with its own entry cut out, then the bundles."""
    start = peers.text.index(f'"{name}"')
    end = start + len(name) + 2
    if start == 0:
        kept = [TextSlice(peers, end + 1, len(peers.text))]
    else:
        kept = [TextSlice(peers, 0, start - 1), TextSlice(peers, end, len(peers.text))]
    head = '{"routing":{"cluster":"' + name + '","peers":['
    tail = TextSlice(bundles, 0, len(bundles.text))
    return ComposedJsonObject((head, *kept, "]}", tail), digest)


async def test_composed_documents_read_back_whole_with_their_digest(
    store: Store, store_url: str
) -> None:
    peers = SharedText('"a","b","c"')
    bundles = SharedText(',"bundles":{"td":"' + "k" * 5000 + '"}}')
    docs = {n: _composed(n, peers, bundles, f"digest-{n}") for n in ("a", "b", "c")}
    assert await store.put_snapshots(docs, now=1.0) == {"a": 1, "b": 1, "c": 1}
    assert await _sections(store) == 2  # peers and bundles, once each
    expected = {
        "a": '{"routing":{"cluster":"a","peers":["b","c"]}',
        "b": '{"routing":{"cluster":"b","peers":["a","c"]}',
        "c": '{"routing":{"cluster":"c","peers":["a","b"]}',
    }
    async with open_store(store_url) as other_replica:
        for name, head in expected.items():
            got = await other_replica.get_snapshot(name)
            assert got is not None
            assert got.document == docs[name].text == head + bundles.text
            assert (got.version, got.digest) == (1, f"digest-{name}")
    # the next rebuild: new peers, the same bundles; the old peer list goes
    peers2 = SharedText('"a","b","c","d"')
    docs2 = {n: _composed(n, peers2, bundles, f"digest2-{n}") for n in ("a", "b")}
    assert await store.put_snapshots(docs2, now=2.0) == {"a": 2, "b": 2}
    assert await _sections(store) == 3  # c still uses the first peer list
    await store.put_snapshots({"c": '{"n":1}'}, now=3.0)
    assert await _sections(store) == 2
    got = await store.get_snapshot("a")
    assert got is not None and got.document.startswith(
        '{"routing":{"cluster":"a","peers":["b","c","d"]}'
    )
    got = await store.get_snapshot("c")
    assert got is not None and (got.version, got.document, got.digest) == (2, '{"n":1}', None)


async def test_a_composed_document_that_is_not_an_object_is_refused(store: Store) -> None:
    shared = SharedText("[1]")
    for parts in (("[", TextSlice(shared, 1, 2), "]"), ("{", TextSlice(shared, 0, 9), "}")):
        with pytest.raises(InvalidDocument):
            await store.put_snapshots({"a": ComposedJsonObject(parts)}, now=1.0)
    with pytest.raises(InvalidDocument):
        bad = ComposedJsonObject(('{"a":"', TextSlice(SharedText("\ud800"), 0, 1), '"}'))
        await store.put_snapshots({"a": bad}, now=1.0)
    assert await store.get_snapshot("a") is None


async def test_composed_snapshots_read_as_parts_share_one_text_per_section(
    store: Store, store_url: str
) -> None:
    peers = SharedText('"a","b","c"')
    bundles = SharedText(',"bundles":{"td":"' + "k" * 5000 + '"}}')
    docs = {n: _composed(n, peers, bundles, f"digest-{n}") for n in ("a", "b", "c")}
    await store.put_snapshots(docs, now=1.0)
    await store.put_snapshots({"plain": '{"n":1}'}, now=1.0)
    async with open_store(store_url) as other_replica:
        read = {n: await other_replica.get_snapshot_parts(n) for n in ("a", "b", "c")}
        plain = await other_replica.get_snapshot_parts("plain")
        assert await other_replica.get_snapshot_parts("nobody") is None
    for name, got in read.items():
        assert isinstance(got, ComposedSnapshot)
        assert (got.version, got.digest) == (1, f"digest-{name}")
        assert got.document == docs[name].text
    tails = [got.parts[-1] for got in read.values() if isinstance(got, ComposedSnapshot)]
    assert all(isinstance(t, TextSlice) for t in tails)
    assert len({id(t.section) for t in tails if isinstance(t, TextSlice)}) == 1  # read once
    assert isinstance(plain, SnapshotRecord) and plain.document == '{"n":1}'


async def test_a_batch_of_snapshots_reaches_another_replica_in_order(
    store: Store, store_url: str
) -> None:
    names = [f"c{i:03d}" for i in range(40)]
    await store.put_snapshots({"c005": '{"n":0}'}, now=1.0)  # one topic already has a row
    async with open_store(store_url) as replica, replica.changes() as feed:
        versions = await store.put_snapshots({n: '{"n":1}' for n in reversed(names)}, now=2.0)
        seen = []
        with trio.fail_after(5):
            async for change in feed:
                seen.append(change)
                if len(seen) == len(names):
                    break
    assert versions == {n: 2 if n == "c005" else 1 for n in names}
    assert [c.topic for c in seen] == [f"snapshot:{n}" for n in names]
    assert [c.seq for c in seen] == list(range(seen[0].seq, seen[0].seq + len(names)))
    assert await store.changes_since(seen[0].seq - 1) == seen


async def test_many_snapshots_are_read_as_parts_in_one_call(store: Store, store_url: str) -> None:
    peers = SharedText('"a","b","c"')
    bundles = SharedText(',"bundles":{"td":"k"}}')
    docs: dict[str, object] = {n: _composed(n, peers, bundles, n) for n in ("a", "b", "c")}
    docs.update({f"plain{i}": f'{{"n":{i}}}' for i in range(10)})
    await store.put_snapshots(docs, now=1.0)  # type: ignore[arg-type]
    async with open_store(store_url) as other_replica:
        for wanted in (["b", "nobody"], [*sorted(docs), "nobody"]):  # one by one, and a scan
            got = await other_replica.get_snapshots_parts(wanted)
            assert set(got) == set(wanted) - {"nobody"}
            for name, record in got.items():
                document = docs[name]
                text = document if isinstance(document, str) else document.text  # type: ignore[attr-defined]
                assert record.document == text and record.version == 1
                assert isinstance(record, ComposedSnapshot) == (name in "abc")
        assert await other_replica.get_snapshots_parts([]) == {}
