"""Failover across three trust domains under continuous traffic: east's apps call
``catalog.shop`` which prefers west (priority 0) and fails over to north (priority 1)."""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import trio

from federation.model import RetryPolicy
from tests.integration.gateway.harness import Federation, open_federation


@dataclass
class Traffic:
    served_by: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def tail(self, count: int) -> list[str]:
        return self.served_by[-count:]


async def drive(url: str, proxy: str, traffic: Traffic, concurrency: int = 4) -> None:
    """Idempotent GETs as fast as they complete, until cancelled."""

    async def worker(client: httpx.AsyncClient) -> None:
        while True:
            try:
                resp = await client.get(url)
            except httpx.HTTPError as err:
                traffic.failures.append(f"{type(err).__name__}: {err}")
                continue
            if resp.status_code == 200:
                traffic.served_by.append(resp.json()["cluster"])
            else:
                reason = resp.headers.get("x-isthmus-reason")
                traffic.failures.append(f"{resp.status_code} {reason}")

    async with httpx.AsyncClient(proxy=proxy, timeout=10) as client, trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker, client)


async def until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    with trio.move_on_after(timeout_s):
        while not check():
            await trio.sleep(0.02)
        return
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def mostly(traffic: Traffic, cluster: str, count: int) -> Callable[[], bool]:
    start = len(traffic.served_by)
    return lambda: (
        traffic.served_by[start:].count(cluster) >= count and set(traffic.tail(count)) == {cluster}
    )


async def run_scenario(fed: Federation, traffic: Traffic) -> None:
    await until(mostly(traffic, "west", 20), 5, "traffic to reach west")
    fed.kill_backend("west")
    await until(mostly(traffic, "north", 30), 10, "failover to north after west's backend died")
    fed.kill_gateway("west")
    await until(mostly(traffic, "north", 30), 10, "traffic to stay on north after west died")
    await fed.start_backend("west")
    await fed.start_gateway("west")
    await until(mostly(traffic, "west", 20), 15, "failback to west")


async def test_backend_then_gateway_death_fails_over_without_errors_and_fails_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="isthmus.access")
    traffic = Traffic()
    # Four clients fail at the same instant when a cluster dies: a budget of 100 % lets each
    # retry (the default 20 % / 3 concurrent would rightly refuse the fourth).
    retry = RetryPolicy(attempts=3, per_try_timeout_s=2.0, budget_percent=100.0)
    async with open_federation(tmp_path, ("east", "west", "north"), retry=retry) as fed:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drive, "http://catalog.shop.global/", fed["east"].outbound, traffic)
            await run_scenario(fed, traffic)
            nursery.cancel_scope.cancel()
        errors = [r.getMessage() for r in caplog.records if '"status":200' not in r.getMessage()]
        assert traffic.failures == [], errors
        assert traffic.served_by.count("north") >= 60
        retries = [
            line
            for line in (fed["east"].gateway.metrics.registry.collect())  # type: ignore[union-attr]
            if line.name == "isthmus_retries"
        ]
        assert retries and any(sample.value > 0 for sample in retries[0].samples)


async def test_graceful_stop_of_a_gateway_under_traffic_fails_no_request(tmp_path: Path) -> None:
    """A rolling restart: west drains (its /readyz turns 503, in-flight requests finish),
    east moves traffic to north, west comes back and traffic returns."""
    traffic = Traffic()
    retry = RetryPolicy(attempts=3, per_try_timeout_s=2.0, budget_percent=100.0)
    async with (
        open_federation(tmp_path, ("east", "west", "north"), retry=retry) as fed,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(drive, "http://catalog.shop.global/", fed["east"].outbound, traffic)
        await until(mostly(traffic, "west", 20), 5, "traffic to reach west")
        with trio.fail_after(10):
            await fed.stop_gateway("west")
        await until(mostly(traffic, "north", 20), 10, "traffic on north while west is down")
        await fed.start_gateway("west")
        await until(mostly(traffic, "west", 20), 15, "traffic back on west")
        nursery.cancel_scope.cancel()
    assert traffic.failures == []
