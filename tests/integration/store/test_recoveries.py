"""Store contract for cluster recoveries (``failback_after`` windows that outlive a leader):
both backends, schema version 2."""

from __future__ import annotations

import pytest

from federation.store import InvalidDocument, Store, open_store


async def test_recovery_is_an_upsert_listed_by_every_replica(store: Store, store_url: str) -> None:
    assert await store.list_recoveries() == {}
    await store.record_recovery("b", at=10.0)
    await store.record_recovery("a", at=11.5)
    await store.record_recovery("b", at=20.0)  # a later recovery replaces the earlier one
    async with open_store(store_url) as other_replica:
        assert await other_replica.list_recoveries() == {"a": 11.5, "b": 20.0}
    topics = [c.topic for c in await store.changes_since(0)]
    assert topics == ["recovery:a", "recovery:b"]  # coalesced per topic, latest seq last


@pytest.mark.parametrize(
    ("cluster", "at"),
    [("", 1.0), ("a\x00", 1.0), ("a", float("nan")), ("a", float("inf")), ("a", True)],
)
async def test_invalid_recovery_is_refused_and_nothing_is_stored(
    store: Store, cluster: str, at: float
) -> None:
    with pytest.raises(InvalidDocument):
        await store.record_recovery(cluster, at)
    assert await store.list_recoveries() == {}
    assert await store.current_change_seq() == 0


async def test_a_version_1_database_is_upgraded_and_keeps_its_data(store_url: str) -> None:
    async with open_store(store_url) as old:
        await old.put_service("svc.ns", {"v": 1}, now=1.0)

        def downgrade(tx: object) -> None:  # what a database written by isthmus 1 looks like
            tx.run("DROP TABLE cluster_recoveries")  # type: ignore[attr-defined]
            tx.run("DROP TABLE snapshot_sections")  # type: ignore[attr-defined]
            for column in ("section", "sections", "digest"):
                tx.run(f"ALTER TABLE snapshots DROP COLUMN {column}")  # type: ignore[attr-defined]
            tx.run("DELETE FROM schema_version WHERE version >= 2")  # type: ignore[attr-defined]

        await old._write(downgrade)  # type: ignore[attr-defined]
    async with open_store(store_url) as upgraded:
        assert [s.name for s in await upgraded.list_services()] == ["svc.ns"]
        await upgraded.record_recovery("a", at=5.0)
        assert await upgraded.list_recoveries() == {"a": 5.0}
        version = await upgraded._read(  # type: ignore[attr-defined]
            lambda tx: tx.one("SELECT MAX(version) FROM schema_version")
        )
        assert int(version[0]) == 4  # every migration: 2 recoveries, 3 sections, 4 composed
