"""The placement engine steering real gateways: ``isthmus federation serve`` with a declared
service, three ``isthmus gateway run --join`` processes, demo backends, real mTLS.

West and north both export ``hello.demo``; without a declaration east would split between
them (the simple rule). Declared with ``clusters: [west]`` it runs on west only, so every one of
east's requests lands on west; moving the declaration to north moves east's traffic there.
``isthmus plan --federation`` and ``isthmus explain`` show the decision a user would ask about.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from federation.service.auth import ADMIN_TOKEN_FILE
from tests.e2e.gateway.harness import SERVICE, Traffic, World
from tests.e2e.test_federation_gateways import join_all


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with trio.open_nursery() as nursery:
        built = World(tmp_path, nursery)
        try:
            yield built
        finally:
            with trio.CancelScope(shield=True):
                await built.close()
            nursery.cancel_scope.cancel()


async def declare(world: World, policy: dict[str, Any]) -> None:
    token = (world.fed_state / ADMIN_TOKEN_FILE).read_text().strip()
    context = ssl.create_default_context(cafile=str(world.fed_state / "tls" / "ca.pem"))
    url = f"https://127.0.0.1:{world.fed_port}/v1/services/{SERVICE}"
    async with httpx.AsyncClient(verify=context, timeout=5) as client:
        response = await client.put(url, json=policy, headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text


async def test_declared_placement_steers_real_traffic_and_is_explained(world: World) -> None:
    gws, _ = await join_all(world, {"east": False, "west": True, "north": True})
    east = gws["east"]
    await world.wait_levels(east, [{"west", "north"}], 20)  # the simple rule, before declaring
    await declare(world, {"replicas": 1, "clusters": ["west"]})
    await world.wait_levels(east, [{"west"}], 20)
    traffic = Traffic(east.spec.outbound_port)
    answers = await traffic.burst(30)
    assert not traffic.failures, traffic.failures[:3]
    assert answers == {"west": 30}
    url = f"https://127.0.0.1:{world.fed_port}"
    config = ("--config", str(world.fed_config))
    shown = await world.cli("plan", "--federation", url, "--output", "json", *config)
    assert shown.returncode == 0, shown.stderr.decode()
    live = json.loads(shown.stdout)
    assert live["placements"][SERVICE] == {"west": 1}
    assert live["traffic"][SERVICE]["east"][0]["weights"] == {"west": 100}
    explained = await world.cli("explain", SERVICE, "--federation", url, *config)
    assert explained.returncode == 0, explained.stderr.decode()
    text = explained.stdout.decode()
    assert "runs on west×1" in text and "allow-list" in text
    # Move the declaration: traffic follows the placement.
    await declare(world, {"replicas": 1, "clusters": ["north"]})
    await world.wait_levels(east, [{"north"}], 20)
    moved = await traffic.burst(30)
    assert not traffic.failures, traffic.failures[:3]
    assert moved == {"north": 30}
