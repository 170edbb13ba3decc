"""Join checks the token before the registry: a bad token never learns which trust domains
exist, and gets the token's own refusal (regression: the bundle was checked first)."""

from __future__ import annotations

import httpx
import trio

from federation.service.server import RunningFederation
from tests.integration.federation.conftest import FakeCluster
from tests.integration.federation.test_join_api import edited


async def _register(federation: RunningFederation, api: httpx.AsyncClient, name: str) -> None:
    token = await federation.service.create_join_token(name)
    assert (await api.post("/v1/join", json=FakeCluster(name).join_body(token))).status_code == 201


async def test_reused_token_with_a_differing_bundle_gets_reused_not_conflict(
    federation: RunningFederation, api: httpx.AsyncClient
) -> None:
    cluster = FakeCluster("aws")
    token = await federation.service.create_join_token("aws")
    assert (await api.post("/v1/join", json=cluster.join_body(token))).status_code == 201
    other = FakeCluster("aws")  # same trust domain, another CA: a conflict if checked first
    again = await api.post("/v1/join", json=other.join_body(token))
    assert again.status_code == 403, again.text
    assert again.json()["error"]["reason"] == "reused"


async def test_expired_token_gets_expired_not_conflict(
    federation: RunningFederation, api: httpx.AsyncClient
) -> None:
    await _register(federation, api, "aws")
    token = await federation.service.create_join_token("aws", ttl_s=0.05)
    await trio.sleep(0.1)
    response = await api.post("/v1/join", json=FakeCluster("aws").join_body(token))
    assert response.status_code == 403, response.text
    assert response.json()["error"]["reason"] == "expired"


async def test_unknown_token_cannot_probe_registered_trust_domains(
    federation: RunningFederation, api: httpx.AsyncClient
) -> None:
    await _register(federation, api, "aws")
    mine = await federation.service.create_join_token("probe")
    forged = edited(mine, id="not-a-real-id")
    taken = FakeCluster("probe").join_body(forged, trust_domain=FakeCluster("aws").td)
    taken["trust_bundle"] = FakeCluster("aws").bundle().to_json()
    free = FakeCluster("probe").join_body(forged)
    answers = [await api.post("/v1/join", json=body) for body in (taken, free)]
    assert [a.status_code for a in answers] == [403, 403], [a.text for a in answers]
    assert answers[0].json()["error"] == answers[1].json()["error"]


async def test_conflict_after_a_valid_token_leaves_the_token_usable(
    federation: RunningFederation, api: httpx.AsyncClient
) -> None:
    await _register(federation, api, "aws")
    token = await federation.service.create_join_token("gcp")
    body = FakeCluster("gcp").join_body(token, trust_domain=FakeCluster("aws").td)
    body["trust_bundle"] = FakeCluster("aws").bundle().to_json()
    response = await api.post("/v1/join", json=body)
    assert response.status_code == 409
    assert response.json()["error"]["reason"] == "trust-domain-taken"
    assert "was not used: join again with it" in response.json()["error"]["message"]
    assert await federation.service.store.get_cluster("gcp") is None
    fixed = await api.post("/v1/join", json=FakeCluster("gcp").join_body(token))
    assert fixed.status_code == 201, fixed.text  # the same token, after fixing the request
    reused = await api.post("/v1/join", json=FakeCluster("gcp").join_body(token))
    assert reused.status_code == 403 and reused.json()["error"]["reason"] == "reused"
