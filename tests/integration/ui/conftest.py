"""A federation with three simulated, reporting clusters for the dashboard's tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from tests.integration.federation.conftest import client_for, fed_config, start_federation
from tests.integration.ui.harness import SimulatedFederation, join_three

INTERVAL_S = 0.25


@pytest.fixture
async def sim(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[SimulatedFederation]:
    fed = await start_federation(
        nursery, fed_config(tmp_path, report_interval_s=INTERVAL_S, missed_intervals=4)
    )
    async with client_for(fed) as api:
        clusters = await join_three(fed, api)
        sim = SimulatedFederation(fed, api, clusters, INTERVAL_S)
        await sim.report_once()
        await routes_published(sim)
        yield sim


async def routes_published(sim: SimulatedFederation) -> None:
    """Wait (bounded) until the leader has rebuilt every cluster's snapshot from the first
    reports: rebuilds run asynchronously after a report, and the tests read what is served."""
    with trio.fail_after(10):
        while True:
            served = [sim.fed.service.publisher.current(name) for name in sim.clusters]
            if all(s is not None and json.loads(s.body)["routing"]["services"] for s in served):
                return
            await trio.sleep(0.02)


@pytest.fixture
def admin(sim: SimulatedFederation) -> dict[str, str]:
    return {"authorization": f"Bearer {sim.fed.admin_token}"}
