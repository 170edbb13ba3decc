"""Join over real TLS + HTTP/2: a token works once; reused, expired, edited tokens refused."""

from __future__ import annotations

import base64
import json

import httpx
import trio

from federation.service.server import RunningFederation
from tests.integration.federation.conftest import FakeCluster


def edited(token: str, **changes: str) -> str:
    body = token.removeprefix("isthmus-join-v1.")
    doc = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    doc.update(changes)
    return "isthmus-join-v1." + base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()


async def test_join_registers_the_cluster_and_serves_its_bundle(
    federation: RunningFederation, api: httpx.AsyncClient
) -> None:
    cluster = FakeCluster("aws-use1")
    token = await federation.service.create_join_token("aws-use1")
    response = await api.post("/v1/join", json=cluster.join_body(token))
    assert response.status_code == 201, response.text
    assert response.http_version == "HTTP/2"
    body = response.json()
    assert body["cluster"] == "aws-use1"
    assert body["audience"] == "isthmus-federation"
    assert cluster.td in body["bundles"]
    bundle = await api.get(f"/v1/bundles/{cluster.td}")
    assert bundle.status_code == 200
    assert bundle.json()["keys"][0]["use"] == "x509-svid"


async def test_reused_token_is_refused(
    federation: RunningFederation, api: httpx.AsyncClient
) -> None:
    cluster = FakeCluster("aws-use1")
    token = await federation.service.create_join_token("aws-use1")
    assert (await api.post("/v1/join", json=cluster.join_body(token))).status_code == 201
    again = await api.post("/v1/join", json=cluster.join_body(token))
    assert again.status_code == 403
    assert again.json()["error"]["reason"] == "reused"
    assert "already used" in again.json()["error"]["message"]


async def test_expired_token_is_refused_and_nothing_is_stored(
    federation: RunningFederation, api: httpx.AsyncClient
) -> None:
    cluster = FakeCluster("gcp-euw1")
    token = await federation.service.create_join_token("gcp-euw1", ttl_s=0.05)
    await trio.sleep(0.1)
    response = await api.post("/v1/join", json=cluster.join_body(token))
    assert response.status_code == 403
    assert response.json()["error"]["reason"] == "expired"
    assert await federation.service.store.get_cluster("gcp-euw1") is None
    assert (await api.get(f"/v1/bundles/{cluster.td}")).status_code == 404


async def test_tampered_token_is_refused_and_stays_unused(
    federation: RunningFederation, api: httpx.AsyncClient
) -> None:
    cluster = FakeCluster("gcp-euw1")
    token = await federation.service.create_join_token("aws-use1")
    forged = edited(token, cluster="gcp-euw1")
    response = await api.post("/v1/join", json=cluster.join_body(forged))
    assert response.status_code == 403
    assert response.json()["error"]["reason"] == "tampered"
    assert await federation.service.store.get_cluster("gcp-euw1") is None
    honest = FakeCluster("aws-use1")
    assert (await api.post("/v1/join", json=honest.join_body(token))).status_code == 201


async def test_bad_bundle_does_not_burn_the_token(
    federation: RunningFederation, api: httpx.AsyncClient
) -> None:
    cluster = FakeCluster("aws-use1")
    token = await federation.service.create_join_token("aws-use1")
    bad = await api.post("/v1/join", json=cluster.join_body(token, trust_bundle='{"keys": 3}'))
    assert bad.status_code == 422
    assert "trust_bundle" in bad.json()["error"]["message"]
    assert (await api.post("/v1/join", json=cluster.join_body(token))).status_code == 201


async def test_rejoin_keeps_the_registered_bundle(
    federation: RunningFederation, api: httpx.AsyncClient
) -> None:
    """Re-joining (new token) with the same bundle works; with a different one it is refused,
    because peers accept bundle changes only as signed updates."""
    cluster = FakeCluster("aws")
    for _ in range(2):
        token = await federation.service.create_join_token("aws")
        assert (await api.post("/v1/join", json=cluster.join_body(token))).status_code == 201
    replaced = FakeCluster("aws")  # same trust domain, new CA and key
    token = await federation.service.create_join_token("aws")
    body = replaced.join_body(token, trust_bundle=replaced.bundle(sequence=5).to_json())
    refused = await api.post("/v1/join", json=body)
    assert refused.status_code == 409
    assert "signed update" in refused.json()["error"]["message"]
    served = await api.get(f"/v1/bundles/{cluster.td}")
    assert served.json()["spiffe_sequence"] == 1
    assert served.json() == json.loads(cluster.bundle().to_json())
