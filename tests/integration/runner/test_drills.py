"""The runner in-process (real gateways, federation and replicas on loopback): partition and
slow drills as a user would notice them, the lock file, and the placement document parser."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from isthmus.runner.federation_admin import clusters_by_service
from isthmus.runner.lock import UpAlreadyRunning, UpNotRunning, hold_up_lock, running_up
from isthmus.runner.up import PortInUse, UpReady, check_ports_free, default_config, run_up

SOURCE, SERVICE = "aws-use1", "catalog.shop"  # catalog runs in gcp-euw1 and azure-weu


def free_offset() -> int:
    config = default_config()
    for _ in range(50):
        offset = random.randrange(1000, 25000)
        try:
            check_ports_free(config.ports(offset))
        except PortInUse:
            continue
        return offset
    raise AssertionError("no free port offset found")


@asynccontextmanager
async def running(home: Path) -> AsyncIterator[UpReady]:
    config = default_config().with_intervals(0.5, 0.25)
    async with trio.open_nursery() as nursery:
        ready: UpReady = await nursery.start(
            partial(
                run_up, home, config=config, offset=free_offset(), progress=lambda _: None,
                on_ready=lambda _: None, handle_signals=False,
            )
        )  # fmt: skip
        try:
            yield ready
        finally:
            nursery.cancel_scope.cancel()


def answers_since(ready: UpReady, since: float) -> list[str]:
    flow = ready.local.traffic.flows[(SOURCE, SERVICE)]
    return [cluster for at, cluster in flow.history if at >= since]


async def test_partition_moves_traffic_without_failures_and_heal_restores_it(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as ready:
        local = ready.local
        with trio.fail_after(15):
            while "azure-weu" not in answers_since(ready, 0):
                await trio.sleep(0.1)
        message = await local.partition(SOURCE, "azure-weu")
        assert "partitioned aws-use1 <-> azure-weu" in message
        cut = time.time()
        await trio.sleep(3)
        late = answers_since(ready, cut + 1.0)
        assert late and set(late) == {"gcp-euw1"}, late
        assert local.traffic.flows[(SOURCE, SERVICE)].failed == 0
        assert local.describe()["partitions"] == [["aws-use1", "azure-weu"]]
        with trio.fail_after(10):  # the federation hears a link down, not a cluster down
            while True:
                rows = {
                    r["cluster"]: r for r in (await local.admin.get_json("/v1/status"))["clusters"]
                }
                if "aws-use1" in rows["azure-weu"]["unreachable_from"]:
                    break
                await trio.sleep(0.2)
        assert rows["azure-weu"]["lease"] == rows["aws-use1"]["lease"] == "healthy"
        timeline = (await local.admin.get_json("/v1/events"))["events"]
        drills = [e for e in timeline if e["kind"] == "drill"]
        assert drills[-1]["subject"] == "aws-use1,azure-weu"
        assert drills[-1]["detail"]["action"] == "partition"
        await local.heal()
        healed = time.time()
        with trio.fail_after(15):
            while "azure-weu" not in answers_since(ready, healed):
                await trio.sleep(0.1)


async def test_slow_delays_what_the_cluster_serves(tmp_path: Path) -> None:
    async with running(tmp_path) as ready:
        await ready.local.slow("gcp-euw1", 0.3)
        proxy = f"http://127.0.0.1:{ready.local.clusters[SOURCE].spec.outbound_port}"
        timings: dict[str, list[float]] = {}
        async with httpx.AsyncClient(proxy=proxy, timeout=10) as client:
            for _ in range(40):
                started = time.perf_counter()
                response = await client.get(f"http://{SERVICE}.global/")
                cluster = response.json()["cluster"]
                timings.setdefault(cluster, []).append(time.perf_counter() - started)
                if len(timings.get("gcp-euw1", ())) >= 2:
                    break
        assert min(timings["gcp-euw1"]) >= 0.3, timings


def test_lock_refuses_a_second_holder_and_names_the_first(tmp_path: Path) -> None:
    with pytest.raises(UpNotRunning, match="no isthmus up is running"):
        running_up(tmp_path)
    with hold_up_lock(tmp_path) as lock:
        lock.publish({"control_url": "http://127.0.0.1:1", "dashboard_url": "https://x/ui"})
        assert (tmp_path / "up.lock").stat().st_mode & 0o777 == 0o600
        refused = pytest.raises(UpAlreadyRunning, match=r"already running .*dashboard https://x/ui")
        with refused, hold_up_lock(tmp_path):
            pass
        assert running_up(tmp_path)["control_url"] == "http://127.0.0.1:1"
    with pytest.raises(UpNotRunning):
        running_up(tmp_path)


def test_placement_document_of_the_federation_is_read_as_clusters_per_service() -> None:
    doc = {
        "placements": {"catalog.shop": {"gcp-euw1": 1, "azure-weu": 1}, "checkout.shop": {}},
        "traffic": {},
        "unschedulable": {},
        "decided_at": 1.0,
    }
    assert clusters_by_service(doc) == {
        "catalog.shop": {"gcp-euw1", "azure-weu"},
        "checkout.shop": set(),
    }
