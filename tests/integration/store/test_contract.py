"""The store contract (SPIRE ``sqltest`` style): every backend must pass every test here."""

from __future__ import annotations

import math
from functools import partial

import pytest
import trio

from federation.model import Locality
from federation.store import (
    Change,
    ClusterRecord,
    DuplicateToken,
    EncodedJsonObject,
    InvalidDocument,
    SchemaVersionError,
    StaleBundleSequence,
    Store,
    TokenAlreadyUsed,
    TokenExpired,
    TokenNotFound,
    TokenSecretMismatch,
    open_store,
)


def _cluster(name: str, region: str = "us-east-1") -> ClusterRecord:
    return ClusterRecord(
        name=name,
        trust_domain=f"{name}.example.org",
        locality=Locality(cloud="aws", region=region, zone=f"{region}a"),
        gateway_addresses=("10.0.0.1:15443",),
        capacity=100,
        cost_per_unit=0.5,
        cost_labels={"tier": "spot"},
        registered_at=1000.0,
    )


async def test_join_token_is_single_use(store: Store) -> None:
    await store.create_join_token("tok-1", "aws-use1", "hash-1", expires_at=2000.0)
    assert await store.consume_join_token("tok-1", "hash-1", now=1000.0) == "aws-use1"
    with pytest.raises(TokenAlreadyUsed, match="already used"):
        await store.consume_join_token("tok-1", "hash-1", now=1001.0)


async def test_expired_token_is_refused(store: Store) -> None:
    await store.create_join_token("tok-2", "aws-use1", "hash-2", expires_at=2000.0)
    with pytest.raises(TokenExpired) as caught:
        await store.consume_join_token("tok-2", "hash-2", now=2000.0)
    assert caught.value.token_id == "tok-2"


async def test_tampered_token_is_refused_and_not_consumed(store: Store) -> None:
    await store.create_join_token("tok-3", "gcp-euw1", "right-hash", expires_at=2000.0)
    with pytest.raises(TokenSecretMismatch):
        await store.consume_join_token("tok-3", "wrong-hash", now=1000.0)
    assert await store.consume_join_token("tok-3", "right-hash", now=1000.0) == "gcp-euw1"


async def test_unknown_and_duplicate_tokens(store: Store) -> None:
    with pytest.raises(TokenNotFound):
        await store.consume_join_token("nope", "h", now=1.0)
    await store.create_join_token("tok-4", "a", "h", expires_at=10.0)
    with pytest.raises(DuplicateToken):
        await store.create_join_token("tok-4", "b", "h2", expires_at=10.0)
    assert await store.consume_join_token("tok-4", "h", now=1.0) == "a"


async def test_concurrent_consumption_succeeds_exactly_once(store: Store, store_url: str) -> None:
    await store.create_join_token("race", "azure-weu", "h", expires_at=2000.0)
    winners: list[str] = []
    refusals: list[Exception] = []

    async def consume(replica: Store) -> None:
        try:
            winners.append(await replica.consume_join_token("race", "h", now=1000.0))
        except TokenAlreadyUsed as err:
            refusals.append(err)

    async with open_store(store_url) as second, trio.open_nursery() as nursery:
        for index in range(20):
            nursery.start_soon(consume, store if index % 2 else second)
    assert winners == ["azure-weu"]
    assert len(refusals) == 19


async def test_clusters_upsert_and_list(store: Store) -> None:
    assert await store.get_cluster("aws-use1") is None
    await store.upsert_cluster(_cluster("aws-use1"))
    await store.upsert_cluster(_cluster("aa-first"))
    moved = _cluster("aws-use1", region="us-west-2")
    await store.upsert_cluster(moved)
    assert await store.get_cluster("aws-use1") == moved
    assert [c.name for c in await store.list_clusters()] == ["aa-first", "aws-use1"]


async def test_bundle_compare_and_set(store: Store) -> None:
    await store.put_bundle("td.example", 1, {"keys": [], "spiffe_sequence": 1}, None, now=10.0)
    await store.put_bundle("td.example", 2, '{"keys": [], "spiffe_sequence": 2}', "jws.2", 20.0)
    for stale in (2, 1):
        with pytest.raises(StaleBundleSequence) as caught:
            await store.put_bundle("td.example", stale, {"keys": ["forged"]}, "jws.x", now=30.0)
        assert (caught.value.offered, caught.value.stored) == (stale, 2)
    current = await store.get_bundle("td.example")
    assert current is not None
    assert (current.sequence, current.signed_update, current.stored_at) == (2, "jws.2", 20.0)
    assert "forged" not in current.bundle
    history = await store.bundle_history("td.example")
    assert [b.sequence for b in history] == [2, 1]
    assert [b.trust_domain for b in await store.list_bundles()] == ["td.example"]


async def test_read_world_is_the_three_lists_in_one_read(store: Store) -> None:
    empty = await store.read_world()
    assert (empty.clusters, empty.reports, empty.bundles) == ([], [], [])
    for name in ("b-second", "a-first"):
        await store.upsert_cluster(_cluster(name))
    await store.put_bundle("td.example", 1, {"keys": [], "spiffe_sequence": 1}, None, now=10.0)
    await store.record_report("b-second", {"seq": 1}, received_at=1.0)
    world = await store.read_world()
    assert world.clusters == await store.list_clusters()
    assert [c.name for c in world.clusters] == ["a-first", "b-second"]
    assert world.reports == await store.list_reports()
    assert [(r.cluster, r.report) for r in world.reports] == [("b-second", '{"seq":1}')]
    assert world.bundles == await store.list_bundles()
    assert [b.trust_domain for b in world.bundles] == ["td.example"]


async def test_snapshot_versions_rise_per_cluster(store: Store, store_url: str) -> None:
    assert await store.get_snapshot("c1") is None
    versions = [await store.put_snapshot("c1", {"n": n}, now=float(n)) for n in range(3)]
    assert versions == [1, 2, 3]
    assert await store.put_snapshot("c2", {"n": 0}, now=5.0) == 1
    async with open_store(store_url) as second:
        assert await second.put_snapshot("c1", {"n": 3}, now=6.0) == 4
    latest = await store.get_snapshot("c1")
    assert latest is not None
    assert (latest.version, latest.document, latest.created_at) == (4, '{"n":3}', 6.0)


async def test_put_snapshots_stores_many_in_one_write(store: Store, store_url: str) -> None:
    assert await store.put_snapshots({}, now=1.0) == {}
    assert await store.put_snapshot("c1", {"n": 0}, now=1.0) == 1
    seq = await store.current_change_seq()
    versions = await store.put_snapshots({"c2": {"n": 1}, "c1": '{"n":1}'}, now=2.0)
    assert versions == {"c1": 2, "c2": 1}
    changes = await store.changes_since(seq)
    assert sorted(c.topic for c in changes) == ["snapshot:c1", "snapshot:c2"]
    async with open_store(store_url) as second:
        assert await second.put_snapshots({"c1": {"n": 2}}, now=3.0) == {"c1": 3}
    latest = await store.get_snapshot("c2")
    assert latest is not None
    assert (latest.version, latest.document, latest.created_at) == (1, '{"n":1}', 2.0)


async def test_put_snapshots_refuses_the_whole_batch(store: Store) -> None:
    with pytest.raises(InvalidDocument):
        await store.put_snapshots({"c1": {"n": 1}, "c2": "[1]"}, now=1.0)
    with pytest.raises(InvalidDocument):
        await store.put_snapshots({"c1": {"n": 1}, "": {"n": 1}}, now=1.0)
    assert await store.get_snapshot("c1") is None


async def test_concurrent_writes_fail_alone(store: Store) -> None:
    """Writes that run together (SQLite group-commits them) still succeed or fail each alone."""
    await store.create_join_token("t-dup", "c0", "h", expires_at=100.0)
    outcomes: dict[str, str] = {}

    async def create(token_id: str) -> None:
        try:
            await store.create_join_token(token_id, "c1", "h", expires_at=100.0)
            outcomes[token_id] = "stored"
        except DuplicateToken:
            outcomes[token_id] = "duplicate"

    async with trio.open_nursery() as nursery:
        for index in range(12):
            nursery.start_soon(create, "t-dup" if index == 5 else f"t-{index}")
    assert outcomes.pop("t-dup") == "duplicate"
    assert set(outcomes.values()) == {"stored"} and len(outcomes) == 11
    for token_id in outcomes:
        assert await store.consume_join_token(token_id, "h", now=1.0) == "c1"
    assert await store.consume_join_token("t-dup", "h", now=1.0) == "c0"


async def test_encoded_json_object_is_stored_verbatim(store: Store) -> None:
    await store.record_report("c1", EncodedJsonObject('{"services":[]}'), received_at=1.0)
    report = await store.get_report("c1")
    assert report is not None and report.report == '{"services":[]}'
    with pytest.raises(InvalidDocument):
        await store.record_report("c1", EncodedJsonObject("[1]"), received_at=2.0)


async def test_ack_state(store: Store) -> None:
    empty = await store.get_ack_state("c1")
    assert (empty.acked_version, empty.nacked_version, empty.nacked_error) == (0, 0, None)
    await store.record_ack("c1", 2, ok=True, error=None, at=10.0)
    await store.record_ack("c1", 1, ok=True, error=None, at=11.0)
    await store.record_ack("c1", 3, ok=False, error="weights do not sum to 100", at=12.0)
    state = await store.get_ack_state("c1")
    assert (state.acked_version, state.acked_at) == (2, 10.0)
    assert (state.nacked_version, state.nacked_error, state.nacked_at) == (
        3,
        "weights do not sum to 100",
        12.0,
    )


async def test_report_is_an_upsert(store: Store) -> None:
    await store.record_report("c1", {"seq": 1}, received_at=1.0)
    await store.record_report("c2", {"seq": 1}, received_at=1.5)
    await store.record_report("c1", '{"seq": 2}', received_at=2.0)
    reports = await store.list_reports()
    assert [(r.cluster, r.received_at, r.report) for r in reports] == [
        ("c1", 2.0, '{"seq": 2}'),
        ("c2", 1.5, '{"seq":1}'),
    ]
    latest = await store.get_report("c1")
    assert latest is not None and latest.received_at == 2.0


async def test_reports_and_acks_in_one_batch_each(store: Store) -> None:
    await store.record_reports(
        [("c1", {"seq": 1}, 1.0), ("c2", '{"seq": 1}', 1.5), ("c1", {"seq": 2}, 2.0)]
    )
    reports = await store.list_reports()
    assert [(r.cluster, r.received_at, r.report) for r in reports] == [
        ("c1", 2.0, '{"seq":2}'),  # the later one of a cluster given twice wins
        ("c2", 1.5, '{"seq": 1}'),
    ]
    await store.record_reports([])
    with pytest.raises(InvalidDocument):  # one invalid item: nothing of the batch is stored
        await store.record_reports([("c3", {"seq": 1}, 3.0), ("c4", "[1]", 3.0)])
    assert [r.cluster for r in await store.list_reports()] == ["c1", "c2"]
    await store.record_acks(
        [("c1", 2, True, None, 10.0), ("c1", 1, True, None, 11.0), ("c2", 3, False, "bad", 12.0)]
    )
    await store.record_acks([])
    first, second = await store.get_ack_state("c1"), await store.get_ack_state("c2")
    assert (first.acked_version, first.acked_at) == (2, 10.0)  # applied in order, never lowered
    assert (second.nacked_version, second.nacked_error) == (3, "bad")


async def test_events_keep_order(store: Store) -> None:
    ids = [await store.append_event("lease", f"c{n}", {"n": n}, at=float(n)) for n in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5
    events = await store.list_events()
    assert [e.subject for e in events] == ["c0", "c1", "c2", "c3", "c4"]
    page = await store.list_events(after_id=ids[1], limit=2)
    assert [e.id for e in page] == ids[2:4]


async def test_services_and_decisions(store: Store) -> None:
    await store.put_service("checkout.shop", {"min_clusters": 2}, now=1.0)
    await store.put_service("cart.shop", {"min_clusters": 1}, now=1.0)
    assert await store.delete_service("cart.shop") is True
    assert await store.delete_service("cart.shop") is False
    assert [s.name for s in await store.list_services()] == ["checkout.shop"]
    await store.put_decisions({"a.x": {"w": 1}, "b.x": {"w": 2}}, now=2.0)
    await store.put_decisions({"b.x": {"w": 3}}, now=3.0)
    decisions = await store.list_decisions()
    assert [(d.service, d.decision, d.decided_at) for d in decisions] == [("b.x", '{"w":3}', 3.0)]


@pytest.mark.parametrize(
    "document",
    [
        '{"truncated": ',
        "[1, 2]",
        "42",
        '{"x": NaN}',
        '{"lone": "\ud800"}',
        42,
        ["a"],
        None,
        b"{}",
        {"x": math.nan},
        {"x": object()},
    ],
)
async def test_invalid_documents_are_never_stored(store: Store, document: object) -> None:
    before = await store.current_change_seq()
    with pytest.raises(InvalidDocument):
        await store.record_report("c1", document, received_at=1.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidDocument):
        await store.put_snapshot("c1", document, now=1.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidDocument):
        await store.put_bundle("td", 1, document, None, now=1.0)  # type: ignore[arg-type]
    assert await store.get_report("c1") is None
    assert await store.get_snapshot("c1") is None
    assert await store.get_bundle("td") is None
    assert await store.current_change_seq() == before


async def test_change_feed_reaches_another_replica(store: Store, store_url: str) -> None:
    async with open_store(store_url) as replica, replica.changes() as feed:
        await store.upsert_cluster(_cluster("aws-use1"))
        await store.put_bundle("aws-use1.example.org", 1, {"keys": []}, None, now=1.0)
        await store.record_report("aws-use1", {"ok": True}, received_at=1.0)
        await store.put_snapshot("aws-use1", {"peers": []}, now=1.0)
        await store.put_service("checkout.shop", {}, now=1.0)
        await store.put_decisions({}, now=1.0)
        await store.append_event("joined", "aws-use1", {}, at=1.0)
        expected = [
            "cluster:aws-use1",
            "bundle:aws-use1.example.org",
            "report:aws-use1",
            "snapshot:aws-use1",
            "service:checkout.shop",
            "decision",
            "event",
        ]
        seen = []
        with trio.fail_after(5):
            async for change in feed:
                seen.append(change)
                if len(seen) == len(expected):
                    break
    assert [c.topic for c in seen] == expected
    assert [c.seq for c in seen] == sorted(c.seq for c in seen)
    assert await store.changes_since(seen[2].seq) == seen[3:]


async def test_migrations_are_idempotent(store_url: str) -> None:
    async with open_store(store_url) as first:
        await first.put_service("svc.ns", {"v": 1}, now=1.0)
    async with open_store(store_url) as again, open_store(store_url) as concurrently:
        assert [s.policy for s in await again.list_services()] == ['{"v":1}']
        assert await concurrently.current_change_seq() == 1


async def test_newer_schema_is_refused(store: Store, store_url: str) -> None:
    # A database migrated by a newer isthmus: this program must not touch it.
    await store._write(  # type: ignore[attr-defined]
        lambda tx: tx.run("INSERT INTO schema_version (version, description) VALUES (99, 'x')")
    )
    with pytest.raises(SchemaVersionError, match="version 99"):
        async with open_store(store_url):
            pass


async def test_one_leader_at_a_time(store: Store, store_url: str) -> None:
    log: list[str] = []
    first_leading = trio.Event()
    release_first = trio.Event()

    async def first_work() -> None:
        log.append("first starts")
        first_leading.set()
        await release_first.wait()
        log.append("first ends")

    async def second_work() -> None:
        log.append("second starts")

    async with open_store(store_url) as replica:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(store.run_as_leader, "placement", first_work)
                await first_leading.wait()
                nursery.start_soon(
                    partial(replica.run_as_leader, retry_interval=0.05), "placement", second_work
                )
                await trio.sleep(0.3)
                assert log == ["first starts"]
                release_first.set()
    assert log == ["first starts", "first ends", "second starts"]


async def test_free_text_with_nul_is_refused(store: Store) -> None:
    with pytest.raises(InvalidDocument, match="error"):
        await store.record_ack("c1", 1, ok=False, error="bad\x00byte", at=1.0)
    with pytest.raises(InvalidDocument, match="subject"):
        await store.append_event("lease", "c\x001", {}, at=1.0)
    assert await store.current_change_seq() == 0


async def test_errors_of_the_callers_block_propagate_unwrapped(store_url: str) -> None:
    with pytest.raises(KeyError, match="from the caller"):
        async with open_store(store_url):
            raise KeyError("from the caller")


async def test_slow_reader_gets_the_latest_change_of_each_topic_in_order(store: Store) -> None:
    assert isinstance(store, Store)
    async with store.changes() as feed:
        for n in range(50):
            await store.record_report("busy", {"n": n}, received_at=float(n))
        await store.record_report("quiet", {"n": 0}, received_at=1.0)
        final = await store.current_change_seq()
        seen: list[Change] = []
        with trio.fail_after(5):
            async for change in feed:
                seen.append(change)
                if change.topic == "report:quiet":
                    break
    assert [c.seq for c in seen] == sorted({c.seq for c in seen})
    assert seen[-1].seq == final
    assert (seen[-2].seq, seen[-2].topic) == (final - 1, "report:busy")
    if store.backend == "sqlite":
        # Nothing was read while writing: 50 changes of one topic wait as one.
        assert len(seen) == 2
