"""The placement engine wired into a real federation (hypercorn, TLS 1.3, HTTP/2, SQLite):
declared services, decisions in ``/v1/placement``, snapshot priorities from the plan, failover
on lease expiry, failback only after ``failback_after``, debounced planning."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import trio

from federation.service.server import RunningFederation
from tests.integration.federation.conftest import (
    FakeCluster,
    client_for,
    fed_config,
    start_federation,
)

FAILBACK_S = 1.5


def admin(fed: RunningFederation) -> dict[str, str]:
    return {"authorization": f"Bearer {fed.admin_token}"}


def service_report(seq: int, names: tuple[str, ...] = ("checkout.shop",)) -> dict[str, Any]:
    return {
        "sequence": seq,
        "sent_at": time.time(),
        "services": [
            {
                "name": name,
                "endpoints": [{"address": "127.0.0.1:8080"}],
                "allowed_sources": ["*"],
                "request_rate": 5.0,
            }
            for name in names
        ],
    }


async def join(
    fed: RunningFederation, api: httpx.AsyncClient, name: str, zone: str, capacity: int
) -> FakeCluster:
    cluster = FakeCluster(name, port=15001 + ord(name[0]))
    token = await fed.service.create_join_token(name)
    body = cluster.join_body(
        token, locality={"cloud": "local", "region": "r1", "zone": zone}, capacity=capacity
    )
    response = await api.post("/v1/join", json=body)
    assert response.status_code == 201, response.text
    return cluster


def levels(snap: dict[str, Any], service: str = "checkout.shop") -> list[dict[str, int]]:
    for svc in snap["routing"]["services"]:
        if svc["name"] == service:
            return [level["weights"] for level in svc["priorities"]]
    return []


async def watch_until(
    api: httpx.AsyncClient, cluster: FakeCluster, predicate: Any, timeout_s: float = 10.0
) -> dict[str, Any]:
    """Long-poll ``cluster``'s snapshot until ``predicate`` holds (bounded in time)."""
    after = -1
    with trio.fail_after(timeout_s):
        while True:
            response = await api.get(
                f"/v1/clusters/{cluster.name}/snapshot",
                params={"after": after},
                headers=cluster.auth(),
            )
            if response.status_code == 200:
                snap: dict[str, Any] = response.json()
                if predicate(snap):
                    return snap
                after = snap["version"]


async def placement(fed: RunningFederation, api: httpx.AsyncClient) -> dict[str, Any]:
    response = await api.get("/v1/placement", headers=admin(fed))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_placement(
    fed: RunningFederation, api: httpx.AsyncClient, predicate: Any, timeout_s: float = 10.0
) -> dict[str, Any]:
    with trio.fail_after(timeout_s):
        while True:
            body = await placement(fed, api)
            if predicate(body):
                return body
            await trio.sleep(0.02)


async def events(fed: RunningFederation, api: httpx.AsyncClient, kind: str) -> list[Any]:
    """Timeline events of ``kind``, waiting (bounded) until there is at least one."""
    with trio.fail_after(10):
        while True:
            response = await api.get("/v1/events", params={"limit": 1000}, headers=admin(fed))
            found = [e for e in response.json()["events"] if e["kind"] == kind]
            if found:
                return found
            await trio.sleep(0.02)


POLICY = {
    "replicas": 2,
    "clusters": ["a", "b"],
    "failover": {"failback_after": FAILBACK_S},
}


async def test_service_declaration_is_validated_and_nothing_is_stored_on_error(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fed = await start_federation(nursery, fed_config(tmp_path))
    async with client_for(fed) as api:
        bad = await api.put(
            "/v1/services/checkout.shop", json={**POLICY, "replicaz": 3}, headers=admin(fed)
        )
        assert bad.status_code == 422
        assert "replicaz" in bad.text
        mismatch = await api.put(
            "/v1/services/checkout.shop", json={**POLICY, "name": "cart.shop"}, headers=admin(fed)
        )
        assert mismatch.status_code == 422
        assert "name" in mismatch.json()["error"]["fields"][0]["field"]
        anonymous = await api.put("/v1/services/checkout.shop", json=POLICY)
        assert anonymous.status_code == 401
        listed = await api.get("/v1/services", headers=admin(fed))
        assert listed.json() == {"services": []}
        ok = await api.put("/v1/services/checkout.shop", json=POLICY, headers=admin(fed))
        assert ok.status_code == 200, ok.text
        listed = await api.get("/v1/services", headers=admin(fed))
        assert [s["name"] for s in listed.json()["services"]] == ["checkout.shop"]
        assert (
            await api.delete("/v1/services/checkout.shop", headers=admin(fed))
        ).status_code == 204
        assert (
            await api.delete("/v1/services/checkout.shop", headers=admin(fed))
        ).status_code == 404
        missing = await api.get("/v1/placement/checkout.shop", headers=admin(fed))
        assert missing.status_code == 404


async def test_services_from_the_config_file_are_declared_at_start(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    config = fed_config(tmp_path, services=[{"name": "checkout.shop", "replicas": 1}])
    fed = await start_federation(nursery, config)
    async with client_for(fed) as api:
        listed = await api.get("/v1/services", headers=admin(fed))
        assert [s["name"] for s in listed.json()["services"]] == ["checkout.shop"]


async def test_plan_drives_snapshots_fails_over_and_fails_back_after_the_window(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    config = fed_config(tmp_path, report_interval_s=0.3, placement_debounce_s=0.02)
    fed = await start_federation(nursery, config)
    async with client_for(fed) as api:
        a = await join(fed, api, "a", "z1", capacity=1)
        b = await join(fed, api, "b", "z2", capacity=1)
        c = await join(fed, api, "c", "z3", capacity=100)
        alive = {"a", "b", "c"}

        async def keep_reporting() -> None:
            for seq in range(1, 100_000):
                for cluster in (a, b, c):
                    if cluster.name in alive:
                        await api.post(
                            f"/v1/clusters/{cluster.name}/reports",
                            json=service_report(seq),
                            headers=cluster.auth(),
                        )
                await trio.sleep(0.05)

        reporters = trio.CancelScope()

        async def report_until_done() -> None:
            with reporters:  # stopped before the federation shuts down at the end
                await keep_reporting()

        nursery.start_soon(report_until_done)
        put = await api.put("/v1/services/checkout.shop", json=POLICY, headers=admin(fed))
        assert put.status_code == 200
        cart = {"replicas": 1, "clusters": ["c"]}
        assert (await api.put("/v1/services/cart.shop", json=cart, headers=admin(fed))).is_success
        body = await wait_placement(
            fed,
            api,
            lambda p: (
                p["placements"].get("checkout.shop") == {"a": 1, "b": 1}
                and p["placements"].get("cart.shop") == {"c": 1}
            ),
        )
        cart_decided = (await api.get("/v1/placement/cart.shop", headers=admin(fed))).json()
        # c runs nothing: its gateway splits between a and b; a prefers itself, then b.
        assert body["traffic"]["checkout.shop"]["c"] == [
            {"weights": {"a": 50, "b": 50}, "load": 100}
        ]
        await watch_until(api, c, lambda s: levels(s) == [{"a": 50, "b": 50}])
        await watch_until(api, a, lambda s: levels(s) == [{"a": 100}, {"b": 100}])
        with trio.fail_after(10):  # until c's first report has been planned with
            while True:
                one = (await api.get("/v1/placement/checkout.shop", headers=admin(fed))).json()
                if "unreachable" not in one["explanations"]["c"]["reason"]:
                    break
                await trio.sleep(0.02)
        assert one["explanations"]["c"]["chosen"] is False
        assert "allow-list" in one["explanations"]["c"]["reason"]

        # a goes silent: its lease expires, traffic leaves it, the plan moves its replica.
        seen = (await api.get("/v1/events", params={"limit": 1000}, headers=admin(fed))).json()
        last_id = max((e["id"] for e in seen["events"]), default=0)
        alive.discard("a")
        silent_at = time.time()
        await watch_until(api, c, lambda s: levels(s) == [{"b": 100}])
        seen_at = time.time()
        moved_s = seen_at - silent_at
        assert moved_s < 0.9 + 3.0  # lease window (3 x 0.3 s) plus a bound
        lease = [e for e in await events(fed, api, "lease") if e["detail"]["to"] == "unreachable"]
        expiry_to_snapshot_ms = (seen_at - lease[-1]["at"]) * 1000
        failovers = await events(fed, api, "failover")
        assert failovers and failovers[-1]["subject"] == "checkout.shop"
        assert failovers[-1]["detail"]["from"] == ["a"]
        decided = await wait_placement(
            fed, api, lambda p: p["placements"]["checkout.shop"] == {"b": 1}
        )
        assert decided["unschedulable"]["checkout.shop"]["missing"] == 1
        # only the service on the failed cluster was re-planned; cart.shop's decision stands
        loop = fed.service.publisher.placement
        assert loop.plan is not None and "cart.shop" not in loop.plan.replanned
        cart_now = (await api.get("/v1/placement/cart.shop", headers=admin(fed))).json()
        assert cart_now["decided_at"] == cart_decided["decided_at"]
        moved = await events(fed, api, "placement-moved")
        assert {e["subject"] for e in moved if e["id"] > last_id} == {"checkout.shop"}

        # a comes back: re-placed at once, but it gets traffic only after failback_after.
        alive.add("a")
        back_at = time.time()
        await wait_placement(
            fed, api, lambda p: p["placements"]["checkout.shop"] == {"a": 1, "b": 1}
        )
        early = await watch_until(api, c, lambda s: True)
        if time.time() - back_at < FAILBACK_S - 0.3:
            assert levels(early) == [{"b": 100}]
        await watch_until(api, c, lambda s: levels(s) == [{"a": 50, "b": 50}])
        assert time.time() - back_at >= FAILBACK_S - 0.1
        failbacks = await events(fed, api, "failback")
        assert failbacks and failbacks[-1]["detail"]["to"] == ["a"]
        print(
            f"\nlease expiry -> c's watcher has a snapshot without a: "
            f"{expiry_to_snapshot_ms:.0f} ms (silent {moved_s * 1000:.0f} ms, lease 900 ms); "
            f"last replan CPU {loop.last_cpu_s * 1000:.2f} ms"
        )
        reporters.cancel()
        await trio.sleep(0.1)  # let an in-flight report finish before the server stops


async def test_a_burst_of_declarations_makes_one_plan(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fed = await start_federation(nursery, fed_config(tmp_path, placement_debounce_s=0.5))
    async with client_for(fed) as api:
        await join(fed, api, "a", "z1", capacity=100)
        loop = fed.service.publisher.placement
        before = loop.plans
        names = [f"svc{i}.shop" for i in range(5)]
        for name in names:
            response = await api.put(
                f"/v1/services/{name}", json={"replicas": 1}, headers=admin(fed)
            )
            assert response.status_code == 200
        await wait_placement(fed, api, lambda p: sorted(p["placements"]) == names)
        assert loop.plans == before + 1


def endpoints_report(seq: int, up: int, down: int) -> dict[str, Any]:
    body = service_report(seq)
    body["services"][0]["endpoints"] = [
        {"address": f"127.0.0.1:{9000 + i}", "healthy": i < up} for i in range(up + down)
    ]
    return body


async def test_partial_health_reaches_peers_as_cluster_health_promptly(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """b's backends drop to 2 of 5: a's snapshot carries b's health 0.4 (its gateway spills
    44 % to the next level) within a bound; the time is printed (health change -> snapshot)."""
    fed = await start_federation(nursery, fed_config(tmp_path, report_interval_s=5.0))
    async with client_for(fed) as api:
        a = await join(fed, api, "a", "z1", capacity=100)
        b = await join(fed, api, "b", "z2", capacity=100)

        async def post(cluster: FakeCluster, body: dict[str, Any]) -> None:
            response = await api.post(
                f"/v1/clusters/{cluster.name}/reports", json=body, headers=cluster.auth()
            )
            assert response.status_code == 204

        policy = {"replicas": 1, "clusters": ["b"]}
        assert (
            await api.put("/v1/services/checkout.shop", json=policy, headers=admin(fed))
        ).status_code == 200
        await post(a, {"sequence": 1, "sent_at": time.time()})
        await post(b, endpoints_report(1, up=5, down=0))
        first = await watch_until(api, a, lambda s: levels(s) == [{"b": 100}])
        assert first["routing"]["services"][0]["cluster_health"] == {}
        loop = fed.service.publisher.placement
        timings = []
        for seq, (up, down, expected) in enumerate(
            [(2, 3, {"b": 0.4}), (5, 0, {}), (1, 4, {"b": 0.2}), (5, 0, {})], start=2
        ):
            started = time.perf_counter()
            await post(b, endpoints_report(seq, up=up, down=down))
            await watch_until(
                api,
                a,
                lambda s, want=expected: s["routing"]["services"][0]["cluster_health"] == want,
            )
            timings.append((time.perf_counter() - started) * 1000)
        assert max(timings) < 2000
        print(
            "\nreport with a health change -> peer snapshot: "
            f"{', '.join(f'{t:.0f}' for t in timings)} ms (placement debounce "
            f"{loop.debounce_s * 1000:.0f} ms); last replan CPU {loop.last_cpu_s * 1000:.2f} ms"
        )
