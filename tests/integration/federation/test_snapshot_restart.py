"""Snapshots stored as shared parts (schema v4) serve the same bytes after a restart and on a
replica that only reads them, and an unchanged world republishes nothing after a restart."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import trio

from federation.model.api import Snapshot
from federation.service.publisher import SnapshotPublisher
from federation.service.snapshots import with_version
from federation.store import SplitJsonObject, Store, open_store
from tests.integration.federation.test_lease_timer import CHECKOUT, join, remote

NAMES = ("aws", "azure", "gcp")


async def _fleet(store: Store) -> None:
    for name in NAMES:
        await join(store, name)
        report = {"sequence": 1, "sent_at": 0.0, "services": [CHECKOUT]}
        await store.record_report(name, json.dumps(report), 100.0)


async def _built(store: Store) -> dict[str, tuple[int, str, bytes]]:
    """Run a leader until every cluster is served; ``(version, digest, body)`` of each."""
    publisher = SnapshotPublisher(store, clock=lambda: 100.5, interval_s=1.0, debounce_s=0)
    async with trio.open_nursery() as nursery:
        await nursery.start(publisher.run)
        for name in NAMES:
            assert await publisher.wait_newer(name, -1, 5) is not None
        with trio.fail_after(5):
            while not publisher.leading:
                await trio.sleep(0.01)
        assert await publisher.rebuild() == 0  # the loaded digests are the planned ones
        served = {}
        for name in NAMES:
            current = publisher.current(name)
            assert current is not None
            served[name] = (current.version, current.digest, current.body)
        nursery.cancel_scope.cancel()
    return served


async def test_a_restart_serves_the_same_versions_and_bytes_and_republishes_nothing(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'fed.db'}"
    async with open_store(url) as store:
        await _fleet(store)
        first = await _built(store)
    async with open_store(url) as store:
        again = await _built(store)
    assert again == first
    for name, (version, _, body) in first.items():
        snapshot = Snapshot.model_validate_json(body)
        assert snapshot.version == snapshot.routing.version == version
        assert remote(body) == [{name: 1}, {n: 1 for n in NAMES if n != name}]


async def test_a_reading_replica_serves_what_the_leader_serves(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fed.db'}"
    async with open_store(url) as store:
        await _fleet(store)
        leader = SnapshotPublisher(store, clock=lambda: 100.5, interval_s=1.0, debounce_s=0)
        async with trio.open_nursery() as nursery:
            await nursery.start(leader.run)
            for name in NAMES:
                assert await leader.wait_newer(name, -1, 5) is not None
            async with open_store(url) as other:
                reader = SnapshotPublisher(other, clock=lambda: 100.5, interval_s=1.0)
                await reader.load()
                for name in NAMES:
                    mine, theirs = leader.current(name), reader.current(name)
                    assert mine is not None and theirs is not None
                    assert (theirs.version, theirs.digest) == (mine.version, mine.digest)
                    assert theirs.body == mine.body
                    assert gzip.decompress(theirs.gzipped) == gzip.decompress(mine.gzipped)
                    assert theirs.routing_parts() == mine.routing_parts()
                    assert theirs.content is not None and mine.content is not None
                    first = reader.current(NAMES[0])
                    assert first is not None and first.content is not None
                    assert theirs.content.shared is first.content.shared  # read and kept once
            nursery.cancel_scope.cancel()


async def test_snapshots_stored_before_schema_4_are_served_then_stored_once_more(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'fed.db'}"
    async with open_store(url) as store:
        await _fleet(store)
        built = await _built(store)
        legacy = {}  # what a pre-v4 leader stored: the whole text split before the bundles
        for name, (_, _, body) in built.items():
            text = with_version(Snapshot.model_validate_json(body), 0).model_dump_json()
            cut = text.index(',"bundles":')
            legacy[name] = SplitJsonObject(text[:cut], text[cut:])
        await store.put_snapshots(legacy, now=50.0)  # one version more each, no digest
        reader = SnapshotPublisher(store, clock=lambda: 100.5, interval_s=1.0)
        await reader.load()
        for name, (version, _, body) in built.items():
            served = reader.current(name)
            assert served is not None and served.version == version + 1
            assert served.body == _restamped(body, version, version + 1)
        leader = SnapshotPublisher(store, clock=lambda: 100.5, interval_s=1.0, debounce_s=0)
        async with trio.open_nursery() as nursery:
            await nursery.start(leader.run)
            with trio.fail_after(5):
                while not leader.leading:
                    await trio.sleep(0.01)
            await leader.rebuild()  # the first rebuild (this one or the leader's own) is done
            assert await leader.rebuild() == 0
            for name, (version, _, body) in built.items():
                served = leader.current(name)
                assert served is not None and served.version == version + 2
                assert served.body == _restamped(body, version, version + 2)  # same content
            nursery.cancel_scope.cancel()


def _restamped(body: bytes, old: int, new: int) -> bytes:
    head = b'{"version":%d,"routing":{"version":%d,'
    assert body.startswith(head % (old, old))
    return head % (new, new) + body[len(head % (old, old)) :]
