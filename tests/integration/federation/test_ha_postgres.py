"""Two federation replicas over one PostgreSQL: one leader builds snapshots, both serve
watches (LISTEN/NOTIFY); killing the leader hands leadership over with no lost write."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import trio

from federation.service.server import RunningFederation
from tests.helpers.postgres import postgres_dsn, postgres_server  # noqa: F401
from tests.integration.federation.conftest import (
    FakeCluster,
    client_for,
    fed_config,
    start_federation,
    start_leader,
)

CHECKOUT = {
    "name": "checkout.shop",
    "endpoints": [{"address": "127.0.0.1:8080"}],
    "allowed_sources": ["*"],
}


def report(seq: int, healthy: bool = True) -> dict[str, object]:
    svc = {**CHECKOUT, "endpoints": [{"address": "127.0.0.1:8080", "healthy": healthy}]}
    return {"sequence": seq, "sent_at": time.time(), "services": [svc]}


def weights(snap: dict[str, object]) -> list[dict[str, int]]:
    services = snap["routing"]["services"]  # type: ignore[index]
    return [level["weights"] for level in services[0]["priorities"]] if services else []


async def watch_until(api: httpx.AsyncClient, who: FakeCluster, want: list[dict[str, int]]) -> int:
    after = -1
    for _ in range(30):
        response = await api.get(
            f"/v1/clusters/{who.name}/snapshot", params={"after": after}, headers=who.auth()
        )
        if response.status_code == 200:
            snap = response.json()
            if weights(snap) == want:
                return int(snap["version"])
            after = snap["version"]
    raise AssertionError(f"{who.name} never saw {want}")


async def test_leader_failover_keeps_serving_and_loses_no_write(
    postgres_dsn: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    config = fed_config(tmp_path, store_url=postgres_dsn, report_interval_s=5.0)
    async with trio.open_nursery() as outer:
        a, leader_scope = await start_leader(outer, config)
        b = await start_federation(outer, config)
        assert not b.service.publisher.leading
        aws, gcp = FakeCluster("aws"), FakeCluster("gcp", port=15002)
        async with client_for(a) as api_a, client_for(b) as api_b:
            for cluster in (aws, gcp):
                token = await a.service.create_join_token(cluster.name)
                assert (
                    await api_a.post("/v1/join", json=cluster.join_body(token))
                ).status_code == 201
            # A write through replica A reaches a watcher on replica B.
            r = await api_a.post("/v1/clusters/gcp/reports", json=report(1), headers=gcp.auth())
            assert r.status_code == 204
            before = await watch_until(api_b, aws, [{"gcp": 1}])
            leader_scope.cancel()  # the leader dies
            with trio.fail_after(10):
                while not b.service.publisher.leading:
                    await trio.sleep(0.02)
            # The survivor now builds snapshots: gcp's endpoint goes unhealthy via B.
            r = await api_b.post(
                "/v1/clusters/gcp/reports", json=report(2, healthy=False), headers=gcp.auth()
            )
            assert r.status_code == 204
            after = await watch_until(api_b, aws, [])
            assert after > before
            stored = await b.service.store.get_report("gcp")
            assert stored is not None and '"sequence":2' in stored.report.replace(" ", "")
            assert {c.name for c in await b.service.store.list_clusters()} == {"aws", "gcp"}
        outer.cancel_scope.cancel()


async def test_gateway_fails_over_to_the_surviving_replica(
    postgres_dsn: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    from tests.integration.federation.test_client_link import Gateway

    config = fed_config(tmp_path, store_url=postgres_dsn, report_interval_s=5.0)
    async with trio.open_nursery() as outer:
        a_scope = trio.CancelScope()
        started: list[RunningFederation] = []

        async def run_a(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with a_scope:
                async with trio.open_nursery() as nursery:
                    started.append(await start_federation(nursery, config))
                    task_status.started()
                    await trio.sleep_forever()

        await outer.start(run_a)
        a = started[0]
        b = await start_federation(outer, config)
        aws, gcp = Gateway("aws", tmp_path), FakeCluster("gcp", port=15002)
        await aws.join(await a.service.create_join_token("aws"))
        record = aws.state.load_join()
        assert record is not None
        aws.state.save_join(record.model_copy(update={"federation_urls": (b.url,)}))
        async with client_for(b) as api_b, aws.client() as client, trio.open_nursery() as gw:
            token = await b.service.create_join_token("gcp")
            assert (await api_b.post("/v1/join", json=gcp.join_body(token))).status_code == 201
            link = aws.link(client)
            await gw.start(link.run)
            r = await api_b.post("/v1/clusters/gcp/reports", json=report(1), headers=gcp.auth())
            assert r.status_code == 204

            def routes(want: list[dict[str, int]]) -> bool:
                if not aws.applied:
                    return False
                services = aws.applied[-1][0].routing.services
                got = [p.weights for p in services[0].priorities] if services else []
                return got == want

            with trio.fail_after(10):
                while not routes([{"gcp": 1}]):
                    await trio.sleep(0.02)
            assert client.url == a.url
            a_scope.cancel()  # replica A (the leader, and aws's replica) dies
            r = await api_b.post(
                "/v1/clusters/gcp/reports", json=report(2, healthy=False), headers=gcp.auth()
            )
            assert r.status_code == 204
            with trio.fail_after(15):
                while not routes([]):
                    await trio.sleep(0.02)
            assert client.url == b.url
            gw.cancel_scope.cancel()
        outer.cancel_scope.cancel()
