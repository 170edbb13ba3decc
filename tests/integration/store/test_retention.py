"""Store contract for retention and the join's trust-domain lookup, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from federation.model.routing import Locality
from federation.store import InvalidDocument, PruneCounts, Store
from federation.store.records import ClusterRecord


def cluster(name: str, trust_domain: str) -> ClusterRecord:
    return ClusterRecord(
        name=name,
        trust_domain=trust_domain,
        locality=Locality(cloud="aws", region="r1"),
        gateway_addresses=("10.0.0.1:15443",),
        capacity=100,
        cost_per_unit=0.5,
        registered_at=1000.0,
    )


async def test_old_events_are_pruned_and_recent_ones_kept(store: Store) -> None:
    for at in (10.0, 20.0, 30.0, 40.0):
        await store.append_event("lease", "c1", {"at": at}, at)
    counts = await store.prune(events_before=30.0, tokens_before=0.0)
    assert counts == PruneCounts(events=2, tokens=0)
    assert [e.at for e in await store.list_events()] == [30.0, 40.0]
    ids = [e.id for e in await store.list_events()]
    assert await store.append_event("lease", "c1", {}, 50.0) > max(ids)  # ids never reused
    assert await store.prune(events_before=30.0, tokens_before=0.0) == PruneCounts()


async def test_used_and_expired_tokens_are_pruned_with_their_topics(store: Store) -> None:
    await store.create_join_token("used", "c1", "h1", expires_at=100.0)
    await store.create_join_token("expired", "c2", "h2", expires_at=50.0)
    await store.create_join_token("fresh", "c3", "h3", expires_at=1000.0)
    await store.create_join_token("used-late", "c4", "h4", expires_at=1000.0)
    await store.consume_join_token("used", "h1", now=40.0)
    await store.consume_join_token("used-late", "h4", now=90.0)
    counts = await store.prune(events_before=0.0, tokens_before=60.0)
    assert counts == PruneCounts(events=0, tokens=2)  # used at 40, expired at 50
    assert await store.check_join_token("fresh", "h3", now=70.0) == "c3"
    with pytest.raises(Exception, match="already used"):
        await store.check_join_token("used-late", "h4", now=70.0)
    with pytest.raises(Exception, match="does not exist"):
        await store.check_join_token("used", "h1", now=70.0)
    topics = {c.topic for c in await store.changes_since(0)}
    assert "token:used" not in topics and "token:expired" not in topics
    assert {"token:fresh", "token:used-late"} <= topics


async def test_prune_refuses_a_bad_time(store: Store) -> None:
    with pytest.raises(InvalidDocument):
        await store.prune(events_before=float("nan"), tokens_before=0.0)


async def test_cluster_of_trust_domain(store: Store) -> None:
    assert await store.cluster_of_trust_domain("a.example.org") is None
    await store.upsert_cluster(cluster("b", "shared.example.org"))
    await store.upsert_cluster(cluster("a", "a.example.org"))
    assert await store.cluster_of_trust_domain("a.example.org") == "a"
    assert await store.cluster_of_trust_domain("shared.example.org") == "b"


async def test_append_events_stores_many_in_one_write_in_order(store: Store) -> None:
    assert await store.append_events([]) == []
    seq = await store.current_change_seq()
    ids = await store.append_events(
        [("lease", "a", {"to": "unreachable"}, 1.0), ("lease", "b", '{"to":"healthy"}', 2.0)]
    )
    assert len(ids) == 2 and ids[0] < ids[1]
    events = await store.list_events()
    assert [(e.id, e.subject, e.at) for e in events] == [(ids[0], "a", 1.0), (ids[1], "b", 2.0)]
    assert [c.topic for c in await store.changes_since(seq)] == ["event"]
    with pytest.raises(InvalidDocument):
        await store.append_events([("lease", "c", {}, 3.0), ("lease", "d", "[1]", 4.0)])
    assert len(await store.list_events()) == 2  # nothing of the refused batch
