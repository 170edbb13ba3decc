"""Placement over PostgreSQL with two replicas: a service declared through the follower is
planned by the leader; when the leader dies the survivor plans, keeping the placement."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

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


def admin(fed: RunningFederation) -> dict[str, str]:
    return {"authorization": f"Bearer {fed.admin_token}"}


def report(seq: int) -> dict[str, Any]:
    service = {
        "name": "checkout.shop",
        "endpoints": [{"address": "127.0.0.1:8080"}],
        "allowed_sources": ["*"],
    }
    return {"sequence": seq, "sent_at": time.time(), "services": [service]}


async def placements(fed: RunningFederation, api: httpx.AsyncClient) -> dict[str, Any]:
    response = await api.get("/v1/placement", headers=admin(fed))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()["placements"]
    return body


async def test_follower_declares_leader_plans_survivor_keeps_the_placement(
    postgres_dsn: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    config = fed_config(tmp_path, store_url=postgres_dsn, report_interval_s=5.0)
    async with trio.open_nursery() as outer:
        a, leader_scope = await start_leader(outer, config)
        b = await start_federation(outer, config)
        aws, gcp = FakeCluster("aws"), FakeCluster("gcp", port=15002)
        async with client_for(a) as api_a, client_for(b) as api_b:
            for seq, cluster in enumerate((aws, gcp), start=1):
                token = await a.service.create_join_token(cluster.name)
                assert (
                    await api_a.post("/v1/join", json=cluster.join_body(token))
                ).status_code == 201
                path = f"/v1/clusters/{cluster.name}/reports"
                assert (
                    await api_a.post(path, json=report(seq), headers=cluster.auth())
                ).status_code == 204
            policy = {"replicas": 1}
            put = await api_b.put("/v1/services/checkout.shop", json=policy, headers=admin(b))
            assert put.status_code == 200
            with trio.fail_after(10):
                while not (placed := (await placements(b, api_b)).get("checkout.shop")):
                    await trio.sleep(0.05)
            assert sum(placed.values()) == 1
            assert a.service.publisher.placement.plans >= 1
            assert b.service.publisher.placement.plans == 0
            leader_scope.cancel()
            with trio.fail_after(10):
                while not b.service.publisher.leading:
                    await trio.sleep(0.02)
            # the survivor re-plans (a new service through it) without moving checkout
            put = await api_b.put("/v1/services/cart.shop", json={"replicas": 1}, headers=admin(b))
            assert put.status_code == 200
            with trio.fail_after(10):
                while "cart.shop" not in (now := await placements(b, api_b)):
                    await trio.sleep(0.05)
            assert now["checkout.shop"] == placed
            assert b.service.publisher.placement.plans >= 1
        outer.cancel_scope.cancel()
