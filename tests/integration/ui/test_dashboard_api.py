"""The dashboard over real TLS: login and cookies, /v1/ui/state, the SSE stream, POST /v1/events."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import trio

from federation.service.auth import dashboard_ticket
from tests.integration.federation.conftest import client_for
from tests.integration.ui.harness import SimulatedFederation


@asynccontextmanager
async def logged_in(sim: SimulatedFederation) -> AsyncIterator[httpx.AsyncClient]:
    """A client holding a dashboard session cookie."""
    async with client_for(sim.fed) as client:
        response = await client.get(f"/ui/login?token={sim.fed.admin_token}")
        assert response.status_code == 303 and response.headers["location"] == "/ui"
        yield client


async def test_without_a_session_the_dashboard_redirects_and_the_api_refuses(
    sim: SimulatedFederation,
) -> None:
    page = await sim.api.get("/ui")
    assert page.status_code == 303 and page.headers["location"] == "/ui/login"
    state = await sim.api.get("/v1/ui/state")
    assert state.status_code == 401
    assert "/ui/login?token=" in state.json()["error"]["message"]
    stream = await sim.api.get("/v1/ui/stream")
    assert stream.status_code == 401
    forged = await sim.api.get("/v1/ui/state", headers={"cookie": "isthmus_ui=made-up"})
    assert forged.status_code == 401


async def test_a_wrong_token_gets_the_login_page_and_no_cookie(sim: SimulatedFederation) -> None:
    response = await sim.api.get("/ui/login?token=not-the-token")
    assert response.status_code == 401
    assert "set-cookie" not in response.headers
    assert "not this federation" in response.text


async def test_a_dashboard_ticket_logs_in_but_is_no_api_credential(
    sim: SimulatedFederation,
) -> None:
    ticket = dashboard_ticket(sim.fed.admin_token, int(time.time()) + 600)
    response = await sim.api.get(f"/ui/login?ticket={ticket}")
    assert response.status_code == 303 and "isthmus_ui=" in response.headers["set-cookie"]
    as_bearer = await sim.api.get("/v1/status", headers={"authorization": f"Bearer {ticket}"})
    assert as_bearer.status_code == 401
    expired = dashboard_ticket(sim.fed.admin_token, int(time.time()) - 1)
    refused = await sim.api.get(f"/ui/login?ticket={expired}")
    assert refused.status_code == 401 and "set-cookie" not in refused.headers
    assert "expired" in refused.text
    forged = dashboard_ticket("another-federation's-token", int(time.time()) + 600)
    assert (await sim.api.get(f"/ui/login?ticket={forged}")).status_code == 401


async def test_login_sets_a_strict_httponly_cookie_not_holding_the_token(
    sim: SimulatedFederation,
) -> None:
    response = await sim.api.get(f"/ui/login?token={sim.fed.admin_token}")
    cookie = response.headers["set-cookie"]
    for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
        assert attribute in cookie
    assert sim.fed.admin_token not in cookie
    form = await sim.api.post(
        "/ui/login",
        content=f"token={sim.fed.admin_token}",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 303 and "isthmus_ui=" in form.headers["set-cookie"]


async def test_logged_in_the_page_and_its_assets_load_under_a_strict_csp(
    sim: SimulatedFederation,
) -> None:
    async with logged_in(sim) as client:
        page = await client.get("/ui")
        assert page.status_code == 200
        assert 'data-testid="topology"' in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "http://" not in page.text and "https://" not in page.text  # nothing external
        script = await client.get("/ui/static/dashboard.js")
        assert script.status_code == 200 and "EventSource" in script.text
        assert (await client.get("/ui/static/../app.py")).status_code == 404
        logout = await client.post("/ui/logout")
        assert logout.status_code == 303
        assert (await client.get("/v1/ui/state")).status_code == 401


async def test_state_shows_three_clusters_by_cloud_with_links_placement_and_trust(
    sim: SimulatedFederation, admin: dict[str, str]
) -> None:
    state = (await sim.api.get("/v1/ui/state", headers=admin)).json()
    clusters = {c["name"]: c for c in state["clusters"]}
    assert set(clusters) == {"aws-use1", "gcp-euw1", "azure-weu"}
    assert clusters["gcp-euw1"]["cloud"] == "gcp"
    assert clusters["gcp-euw1"]["region"] == "europe-west1"
    assert {c["state"] for c in clusters.values()} == {"healthy"}
    links = {(link["source"], link["destination"]): link for link in state["links"]}
    assert len(links) == 6
    aws_gcp = links[("aws-use1", "gcp-euw1")]
    assert aws_gcp["state"] == "up" and aws_gcp["request_rate"] == 12.5
    assert aws_gcp["latency_ms"] == 41.0
    placement = {svc["name"]: svc for svc in state["placement"]}
    assert placement["checkout.shop"]["replicas"] == {name: 1 for name in clusters}
    weights = placement["checkout.shop"]["traffic"]  # each source's snapshot, as served
    assert set(weights) == set(clusters)
    assert all(levels and sum(levels[0].values()) > 0 for levels in weights.values())
    assert {t["trust_domain"] for t in state["trust"]} == {
        f"{name}.isthmus.test" for name in clusters
    }
    assert all(t["sequence"] == 1 and t["root_expires_at"] > state["now"] for t in state["trust"])
    joins = [e for e in state["events"] if e["label"] == "join"]
    assert {e["subject"] for e in joins} == set(clusters)


async def test_a_silent_cluster_turns_unreachable_and_its_links_go_down(
    sim: SimulatedFederation, admin: dict[str, str], nursery: trio.Nursery
) -> None:
    sim.kill("azure-weu")
    nursery.start_soon(sim.run_reporters)
    with trio.fail_after(10):
        while True:
            state = (await sim.api.get("/v1/ui/state", headers=admin)).json()
            by_name = {c["name"]: c["state"] for c in state["clusters"]}
            if by_name["azure-weu"] == "unreachable":
                break
            await trio.sleep(0.1)
    assert by_name["aws-use1"] == "healthy"
    into = [link for link in state["links"] if link["destination"] == "azure-weu"]
    assert into and all(link["state"] == "down" and link["request_rate"] == 0 for link in into)
    placement = {svc["name"]: svc for svc in state["placement"]}
    assert placement["checkout.shop"]["replicas"]["azure-weu"] == 0
    assert any(
        e["label"] == "lease-expired" and e["subject"] == "azure-weu" for e in state["events"]
    )


async def test_a_partition_shows_both_links_down_while_both_clusters_stay_healthy(
    sim: SimulatedFederation, admin: dict[str, str]
) -> None:
    sim.partition("aws-use1", "gcp-euw1")
    await sim.report_once()
    state = (await sim.api.get("/v1/ui/state", headers=admin)).json()
    links = {(link["source"], link["destination"]): link for link in state["links"]}
    for pair in (("aws-use1", "gcp-euw1"), ("gcp-euw1", "aws-use1")):
        assert links[pair]["state"] == "down" and links[pair]["probe_ok"] is False
    assert links[("aws-use1", "azure-weu")]["state"] == "up"
    assert {c["state"] for c in state["clusters"]} == {"healthy"}
    sim.heal()
    await sim.report_once()
    state = (await sim.api.get("/v1/ui/state", headers=admin)).json()
    assert all(link["state"] == "up" for link in state["links"])


async def test_posted_drill_events_appear_on_the_timeline(
    sim: SimulatedFederation, admin: dict[str, str]
) -> None:
    body = {"kind": "drill", "subject": "aws-use1", "detail": {"action": "kill-cluster"}}
    created = await sim.api.post("/v1/events", json=body, headers=admin)
    assert created.status_code == 201, created.text
    state = (await sim.api.get("/v1/ui/state", headers=admin)).json()
    drill = next(e for e in state["events"] if e["kind"] == "drill")
    assert (drill["kind"], drill["subject"], drill["label"]) == ("drill", "aws-use1", "drill")
    assert drill["detail"] == {"action": "kill-cluster", "external": True}
    listed = (await sim.api.get("/v1/events", headers=admin)).json()["events"]
    assert [e["subject"] for e in listed if e["kind"] == "drill"] == ["aws-use1"]


async def test_events_need_the_admin_token_a_valid_body_and_a_small_size(
    sim: SimulatedFederation, admin: dict[str, str]
) -> None:
    body = {"kind": "drill", "subject": "aws-use1"}
    assert (await sim.api.post("/v1/events", json=body)).status_code == 401
    reserved = await sim.api.post("/v1/events", json={"kind": "lease"}, headers=admin)
    assert reserved.status_code == 422 and "kind" in reserved.json()["error"]["message"]
    unknown = await sim.api.post("/v1/events", json={**body, "extra": 1}, headers=admin)
    assert unknown.status_code == 422
    huge = {**body, "detail": {"note": "x" * 20_000}}
    assert (await sim.api.post("/v1/events", json=huge, headers=admin)).status_code == 413


async def test_the_stream_pushes_the_state_then_each_change(
    sim: SimulatedFederation, admin: dict[str, str]
) -> None:
    async with logged_in(sim) as client, client.stream("GET", "/v1/ui/stream") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        documents = _documents(stream)
        with trio.fail_after(10):
            first = await documents.__anext__()
            assert len(first["clusters"]) == 3
            event = {"kind": "drill", "subject": "gcp-euw1", "detail": {"action": "heal"}}
            assert (await sim.api.post("/v1/events", json=event, headers=admin)).status_code == 201
            async for document in documents:
                if any(e["kind"] == "drill" for e in document["events"]):
                    break


async def _documents(stream: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    buffer = ""
    async for text in stream.aiter_text():
        buffer += text
        while "\n\n" in buffer:
            message, buffer = buffer.split("\n\n", 1)
            for line in message.splitlines():
                if line.startswith("data: "):
                    yield json.loads(line[len("data: ") :])
