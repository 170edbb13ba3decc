"""The same API flow on both store backends: SQLite (embedded) and PostgreSQL (HA)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from federation.service.server import RunningFederation
from tests.helpers.postgres import postgres_dsn, postgres_server  # noqa: F401
from tests.integration.federation.conftest import client_for, fed_config, joined, start_federation

CHECKOUT = {
    "name": "checkout.shop",
    "endpoints": [{"address": "127.0.0.1:8080"}],
    "allowed_sources": ["*"],
}


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(
    request: pytest.FixtureRequest, nursery: trio.Nursery, tmp_path: Path
) -> AsyncIterator[tuple[RunningFederation, httpx.AsyncClient]]:
    store_url = None if request.param == "sqlite" else request.getfixturevalue("postgres_dsn")
    config = fed_config(tmp_path, store_url=store_url, report_interval_s=5.0)
    federation = await start_federation(nursery, config)
    async with client_for(federation) as api:
        yield federation, api


async def test_join_report_watch_nack_and_refusals(
    backend: tuple[RunningFederation, httpx.AsyncClient],
) -> None:
    federation, api = backend
    c = await joined(federation, api, "aws", "gcp")
    first = (await api.get("/v1/clusters/aws/snapshot", headers=c["aws"].auth())).json()["version"]
    body = {"sequence": 1, "sent_at": time.time(), "services": [CHECKOUT]}
    assert (
        await api.post("/v1/clusters/gcp/reports", json=body, headers=c["gcp"].auth())
    ).status_code == 204
    snap = None
    for _ in range(20):
        response = await api.get(
            "/v1/clusters/aws/snapshot", params={"after": first}, headers=c["aws"].auth()
        )
        if response.status_code == 200 and response.json()["routing"]["services"]:
            snap = response.json()
            break
    assert snap is not None and snap["routing"]["services"][0]["priorities"] == [
        {"weights": {"gcp": 1}}
    ]
    nack = {"version": snap["version"], "ok": False, "error": "refused by test"}
    assert (
        await api.post("/v1/clusters/aws/acks", json=nack, headers=c["aws"].auth())
    ).status_code == 204
    wrong = await api.post(
        "/v1/clusters/aws/reports", json={**body, "extra": 1}, headers=c["aws"].auth()
    )
    assert wrong.status_code == 422
    other = await api.post(
        "/v1/clusters/gcp/acks", json={"version": 1, "ok": True}, headers=c["aws"].auth()
    )
    assert other.status_code == 403
    admin = {"authorization": f"Bearer {federation.admin_token}"}
    rows = {
        r["cluster"]: r for r in (await api.get("/v1/status", headers=admin)).json()["clusters"]
    }
    assert rows["aws"]["nacked_version"] == snap["version"]
    assert rows["aws"]["nack_error"] == "refused by test"
    assert rows["aws"]["last_report_age_s"] is None  # its refused report was not stored
    assert rows["gcp"]["lease"] == "healthy" and rows["gcp"]["acked_version"] is None
