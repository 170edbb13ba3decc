"""Reports renew leases; snapshots follow health; watchers long-poll and ACK/NACK."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from federation.service.server import RunningFederation
from tests.integration.federation.conftest import (
    FakeCluster,
    client_for,
    fed_config,
    joined,
    start_federation,
)


def report(
    seq: int, *, services: list[dict[str, Any]] | None = None, peers: Any = ()
) -> dict[str, Any]:
    return {
        "sequence": seq,
        "sent_at": time.time(),
        "services": services or [],
        "peers": list(peers),
    }


@pytest.fixture
async def steady(
    nursery: trio.Nursery, tmp_path: Path
) -> AsyncIterator[tuple[RunningFederation, httpx.AsyncClient]]:
    """A federation whose leases (5 s interval) cannot expire during a test on a busy machine."""
    federation = await start_federation(nursery, fed_config(tmp_path, report_interval_s=5.0))
    async with client_for(federation) as api:
        yield federation, api


CHECKOUT = {
    "name": "checkout.shop",
    "endpoints": [{"address": "127.0.0.1:8080"}],
    "allowed_sources": ["*"],
}


async def send(
    api: httpx.AsyncClient, cluster: FakeCluster, body: dict[str, Any]
) -> httpx.Response:
    return await api.post(f"/v1/clusters/{cluster.name}/reports", json=body, headers=cluster.auth())


async def snapshot(api: httpx.AsyncClient, cluster: FakeCluster, after: int = -1) -> httpx.Response:
    return await api.get(
        f"/v1/clusters/{cluster.name}/snapshot",
        params={"after": after},
        headers=cluster.auth(),
    )


def weights(snap: dict[str, Any], service: str = "checkout.shop") -> list[dict[str, int]]:
    for svc in snap["routing"]["services"]:
        if svc["name"] == service:
            return [level["weights"] for level in svc["priorities"]]
    return []


async def wait_for(
    api: httpx.AsyncClient, cluster: FakeCluster, predicate: Any, after: int = -1
) -> dict[str, Any]:
    """Long-poll until a snapshot satisfies ``predicate`` (bounded: 50 polls)."""
    for _ in range(50):
        response = await snapshot(api, cluster, after)
        if response.status_code == 200:
            snap = response.json()
            if predicate(snap):
                return snap
            after = snap["version"]
    raise AssertionError("snapshot never reached the expected state")


async def test_reports_make_a_cluster_healthy_and_route_to_it(
    steady: tuple[RunningFederation, httpx.AsyncClient],
) -> None:
    federation, api = steady
    c = await joined(federation, api, "aws", "gcp")
    first = await wait_for(api, c["aws"], lambda s: len(s["routing"]["peers"]) == 1)
    assert [p["cluster"] for p in first["routing"]["peers"]] == ["gcp"]
    assert (
        first["routing"]["peers"][0]["spiffe_id"] == "spiffe://gcp.isthmus.test/isthmus/gateway/gcp"
    )
    assert set(first["bundles"]) == {"aws.isthmus.test", "gcp.isthmus.test"}
    assert (await send(api, c["gcp"], report(1, services=[CHECKOUT]))).status_code == 204
    assert (await send(api, c["aws"], report(1))).status_code == 204
    snap = await wait_for(
        api, c["aws"], lambda s: weights(s) == [{"gcp": 1}], after=first["version"]
    )
    assert snap["version"] > first["version"]
    status = (
        await api.get("/v1/status", headers={"authorization": f"Bearer {federation.admin_token}"})
    ).json()
    leases = {row["cluster"]: row["lease"] for row in status["clusters"]}
    assert leases == {"aws": "healthy", "gcp": "healthy"}


async def test_silent_cluster_expires_and_traffic_moves_away(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # 1 s interval (expiry 3 s) while the others report every 0.1 s: a busy machine cannot
    # make the live clusters' leases flap.
    federation = await start_federation(nursery, fed_config(tmp_path, report_interval_s=1.0))
    async with client_for(federation) as api:
        await _silent_cluster(federation, api)


async def _silent_cluster(federation: RunningFederation, api: httpx.AsyncClient) -> None:
    c = await joined(federation, api, "aws", "gcp", "azure")
    for seq in range(1, 3):
        for name in ("gcp", "azure"):
            await send(api, c[name], report(seq, services=[CHECKOUT]))
        await send(api, c["aws"], report(seq))
    both = await wait_for(api, c["aws"], lambda s: weights(s) == [{"azure": 1, "gcp": 1}])
    # gcp goes silent; the others keep reporting.

    async def keep_reporting() -> None:
        for seq in range(3, 1000):
            await send(api, c["azure"], report(seq, services=[CHECKOUT]))
            await send(api, c["aws"], report(seq))
            await trio.sleep(0.1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(keep_reporting)
        moved = await wait_for(
            api, c["aws"], lambda s: weights(s) == [{"azure": 1}], after=both["version"]
        )
        assert moved["version"] > both["version"]
        admin = {"authorization": f"Bearer {federation.admin_token}"}
        status = (await api.get("/v1/status", headers=admin)).json()
        nursery.cancel_scope.cancel()
    leases = {row["cluster"]: row["lease"] for row in status["clusters"]}
    assert leases["gcp"] == "unreachable" and leases["azure"] == "healthy"


async def test_link_down_only_changes_the_reporters_routes(
    steady: tuple[RunningFederation, httpx.AsyncClient],
) -> None:
    federation, api = steady
    c = await joined(federation, api, "aws", "gcp", "azure")
    await send(api, c["gcp"], report(1, services=[CHECKOUT]))
    await send(api, c["azure"], report(1, peers=[{"cluster": "gcp", "ok": True}]))
    await send(api, c["aws"], report(1))
    await wait_for(api, c["aws"], lambda s: weights(s) == [{"gcp": 1}])
    await send(api, c["aws"], report(2, peers=[{"cluster": "gcp", "ok": False}]))
    aws = await wait_for(api, c["aws"], lambda s: weights(s) == [])
    azure = (await snapshot(api, c["azure"])).json()
    assert weights(azure) == [{"gcp": 1}]
    assert [p["cluster"] for p in aws["routing"]["peers"]] == ["azure", "gcp"]
    status = (
        await api.get("/v1/status", headers={"authorization": f"Bearer {federation.admin_token}"})
    ).json()
    gcp = next(row for row in status["clusters"] if row["cluster"] == "gcp")
    assert gcp["lease"] == "healthy"
    assert gcp["unreachable_from"] == ["aws"]


async def test_long_poll_wakes_on_change_and_times_out_without_one(
    federation: RunningFederation, api: httpx.AsyncClient
) -> None:
    c = await joined(federation, api, "aws", "gcp")
    settled = await wait_for(api, c["aws"], lambda s: len(s["routing"]["peers"]) == 1)
    current = settled["version"]
    start = trio.current_time()
    idle = await snapshot(api, c["aws"], current)
    assert idle.status_code == 204
    assert trio.current_time() - start >= 1.9  # long_poll_s = 2
    got: list[httpx.Response] = []

    async def watch() -> None:
        got.append(await snapshot(api, c["aws"], current))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        await trio.sleep(0.2)
        await send(api, c["gcp"], report(1, services=[CHECKOUT]))
    assert got[0].status_code == 200
    assert got[0].json()["version"] > current
    assert weights(got[0].json()) == [{"gcp": 1}]


async def test_ack_and_nack_show_in_status_and_metrics(
    federation: RunningFederation, api: httpx.AsyncClient
) -> None:
    c = await joined(federation, api, "aws", "gcp")
    version = (await snapshot(api, c["aws"])).json()["version"]
    ack = await api.post(
        "/v1/clusters/aws/acks", json={"version": version, "ok": True}, headers=c["aws"].auth()
    )
    assert ack.status_code == 204
    gcp_version = (await snapshot(api, c["gcp"])).json()["version"]
    nack = {"version": gcp_version, "ok": False, "error": "peer address unroutable"}
    assert (
        await api.post("/v1/clusters/gcp/acks", json=nack, headers=c["gcp"].auth())
    ).status_code == 204
    admin = {"authorization": f"Bearer {federation.admin_token}"}
    rows = {
        row["cluster"]: row
        for row in (await api.get("/v1/status", headers=admin)).json()["clusters"]
    }
    assert rows["aws"]["acked_version"] == version
    assert rows["gcp"]["nacked_version"] == gcp_version
    assert rows["gcp"]["nack_error"] == "peer address unroutable"
    timeline = (await api.get("/v1/events", headers=admin)).json()["events"]
    seen = [(e["kind"], e["subject"]) for e in timeline]
    assert ("cluster-joined", "aws") in seen and ("cluster-joined", "gcp") in seen
    nacked = next(e for e in timeline if e["kind"] == "snapshot-nacked")
    assert nacked["detail"] == {"version": gcp_version, "error": "peer address unroutable"}
    later = await api.get("/v1/events", params={"after": nacked["id"]}, headers=admin)
    assert all(e["id"] > nacked["id"] for e in later.json()["events"])
    assert (await api.get("/v1/events", headers=c["aws"].auth())).status_code == 401
    metrics = (await api.get("/metrics")).text
    assert "isthmus_federation_push_to_ack_seconds_count 2.0" in metrics
    assert "isthmus_federation_snapshot_pushes_total 2.0" in metrics
    future = await api.post(
        "/v1/clusters/aws/acks", json={"version": version + 99, "ok": True}, headers=c["aws"].auth()
    )
    assert future.status_code == 409


async def test_steady_reports_with_changing_load_do_not_bump_versions(
    steady: tuple[RunningFederation, httpx.AsyncClient],
) -> None:
    federation, api = steady
    c = await joined(federation, api, "aws", "gcp")
    await send(api, c["gcp"], report(1, services=[CHECKOUT]))
    settled = await wait_for(api, c["aws"], lambda s: weights(s) == [{"gcp": 1}])
    for seq in range(2, 12):
        busy = {**CHECKOUT, "request_rate": 10.0 * seq, "latency_ewma_ms": 1.0 + seq}
        peers = [{"cluster": "aws", "ok": True, "latency_ms": float(seq)}]
        assert (
            await send(api, c["gcp"], report(seq, services=[busy], peers=peers))
        ).status_code == 204
    unchanged = await snapshot(api, c["aws"], settled["version"])
    assert unchanged.status_code == 204  # long-poll timed out: no new version
