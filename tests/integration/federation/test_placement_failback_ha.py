"""Failback across a leader change (PostgreSQL, two replicas): a cluster recovers, the leader
dies inside the ``failback_after`` window, and the new leader still withholds traffic from the
recovered cluster until the window its predecessor opened ends."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
import trio

from federation.store import open_store
from tests.helpers.postgres import postgres_dsn, postgres_server  # noqa: F401
from tests.integration.federation.conftest import (
    client_for,
    fed_config,
    start_federation,
    start_leader,
)
from tests.integration.federation.test_placement_wiring import (
    admin,
    join,
    levels,
    placement,
    service_report,
    watch_until,
)

WINDOW_S = 3.0
POLICY = {"replicas": 2, "clusters": ["a", "b"], "failover": {"failback_after": WINDOW_S}}


async def test_new_leader_honours_the_failback_window_its_predecessor_opened(
    postgres_dsn: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = fed_config(
        tmp_path, store_url=postgres_dsn, report_interval_s=0.3, placement_debounce_s=0.02
    )
    async with trio.open_nursery() as outer, open_store(postgres_dsn) as store:
        _, leader_scope = await start_leader(outer, config)
        second = await start_federation(outer, config)
        async with client_for(second) as api, trio.open_nursery() as inner:
            a = await join(second, api, "a", "z1", capacity=1)
            b = await join(second, api, "b", "z2", capacity=1)
            c = await join(second, api, "c", "z3", capacity=100)
            alive = {"a", "b", "c"}

            async def keep_reporting() -> None:  # through the follower, which survives
                for seq in range(1, 100_000):
                    for cluster in (a, b, c):
                        if cluster.name in alive:
                            await api.post(
                                f"/v1/clusters/{cluster.name}/reports",
                                json=service_report(seq),
                                headers=cluster.auth(),
                            )
                    await trio.sleep(0.05)

            inner.start_soon(keep_reporting)  # stopped before the client closes
            put = await api.put("/v1/services/checkout.shop", json=POLICY, headers=admin(second))
            assert put.status_code == 200, put.text
            await watch_until(api, c, lambda s: levels(s) == [{"a": 50, "b": 50}])

            # a goes silent (traffic leaves it), then comes back: the leader opens its window
            alive.discard("a")
            await watch_until(api, c, lambda s: levels(s) == [{"b": 100}])
            alive.add("a")
            with trio.fail_after(10):
                while "a" not in (recoveries := await store.list_recoveries()):
                    await trio.sleep(0.02)
            window_ends = recoveries["a"] + WINDOW_S

            # the leader dies inside the window; the follower takes over and plans afresh.
            # Record every snapshot the follower stores once it leads (only the leader writes).
            stored: list[tuple[float, Mapping[str, str]]] = []
            put_snapshots = second.service.store.put_snapshots

            async def recording(documents: Mapping[str, str], now: float) -> dict[str, int]:
                stored.append((time.time(), dict(documents)))
                return await put_snapshots(documents, now)

            monkeypatch.setattr(second.service.store, "put_snapshots", recording)
            leader_scope.cancel()
            with trio.fail_after(5):
                while not second.service.publisher.leading:
                    await trio.sleep(0.02)
            took_over = time.time()
            with trio.fail_after(5):  # its plan places a replica on a again ...
                while second.service.publisher.placement.plans == 0 or (
                    decided := await placement(second, api)
                )["placements"].get("checkout.shop") != {"a": 1, "b": 1}:
                    await trio.sleep(0.01)
            assert time.time() < window_ends - 0.3, "failover too slow to test inside the window"
            assert took_over < window_ends
            # ... but sends a no traffic yet
            assert [lvl["weights"] for lvl in decided["traffic"]["checkout.shop"]["c"]] == [
                {"b": 100}
            ]
            # no snapshot the new leader stored inside the window routes to a (its first build
            # waited for its first plan: no simple-rule snapshot of every exporting cluster),
            # and c is served b only (a snapshot equal to the old leader's is not re-stored)
            snap = await watch_until(api, c, lambda s: True)
            assert time.time() < window_ends - 0.1, "failover too slow to test inside the window"
            assert levels(snap) == [{"b": 100}]
            for at, docs in stored:
                if at >= window_ends - 0.1:
                    continue
                for cluster, document in docs.items():
                    routed = [lvl for lvl in levels(json.loads(document)) if lvl.get("a")]
                    assert not routed, f"{cluster}'s snapshot at {at:.3f} routes to a: {routed}"

            # ... and gives a its traffic back when the window ends, not before
            await watch_until(api, c, lambda s: levels(s) == [{"a": 50, "b": 50}])
            assert time.time() >= window_ends - 0.1
            inner.cancel_scope.cancel()
        outer.cancel_scope.cancel()
