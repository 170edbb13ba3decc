"""Bad input is a 4xx that names the problem, and nothing is stored."""

from __future__ import annotations

import httpx

from federation.service.server import RunningFederation
from tests.integration.federation.conftest import FakeCluster, joined

REPORT = {"sequence": 1, "sent_at": 1.0, "services": [], "peers": []}


async def test_unknown_field_and_wrong_type_are_named(
    federation: RunningFederation, api: httpx.AsyncClient
) -> None:
    c = await joined(federation, api, "aws")
    body = {**REPORT, "colour": "blue", "sequence": "first"}
    response = await api.post("/v1/clusters/aws/reports", json=body, headers=c["aws"].auth())
    assert response.status_code == 422
    fields = {item["field"] for item in response.json()["error"]["fields"]}
    assert fields == {"colour", "sequence"}
    assert await federation.service.store.get_report("aws") is None


async def test_not_json_is_422(federation: RunningFederation, api: httpx.AsyncClient) -> None:
    c = await joined(federation, api, "aws")
    response = await api.post(
        "/v1/clusters/aws/reports", content=b"{not json", headers=c["aws"].auth()
    )
    assert response.status_code == 422
    assert await federation.service.store.get_report("aws") is None


async def test_oversized_body_is_413_before_parsing(
    federation: RunningFederation, api: httpx.AsyncClient
) -> None:
    c = await joined(federation, api, "aws")
    huge = b'{"sequence": 1, "sent_at": 1, "pad": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    response = await api.post("/v1/clusters/aws/reports", content=huge, headers=c["aws"].auth())
    assert response.status_code == 413
    assert "limit" in response.json()["error"]["message"]
    assert await federation.service.store.get_report("aws") is None


async def test_a_cluster_cannot_write_another_clusters_data(
    federation: RunningFederation, api: httpx.AsyncClient
) -> None:
    c = await joined(federation, api, "aws", "gcp")
    as_aws = c["aws"].auth()
    report = await api.post("/v1/clusters/gcp/reports", json=REPORT, headers=as_aws)
    assert report.status_code == 403
    assert (
        "'aws' may not write health reports of cluster 'gcp'" in report.json()["error"]["message"]
    )
    ack = await api.post("/v1/clusters/gcp/acks", json={"version": 1, "ok": True}, headers=as_aws)
    assert ack.status_code == 403
    watch = await api.get("/v1/clusters/gcp/snapshot", headers=as_aws)
    assert watch.status_code == 403
    assert await federation.service.store.get_report("gcp") is None
    assert (await federation.service.store.get_ack_state("gcp")).acked_version == 0


async def test_credentials_are_checked(
    federation: RunningFederation, api: httpx.AsyncClient
) -> None:
    c = await joined(federation, api, "aws")
    url = "/v1/clusters/aws/reports"
    assert (await api.post(url, json=REPORT)).status_code == 401
    wrong_aud = c["aws"].auth(audience="someone-else")
    assert (await api.post(url, json=REPORT, headers=wrong_aud)).status_code == 401
    too_long = c["aws"].auth(ttl=3600)
    response = await api.post(url, json=REPORT, headers=too_long)
    assert response.status_code == 401
    assert response.json()["error"]["reason"] == "jwt-ttl-too-long"
    stranger = FakeCluster("aws")  # same name and trust domain, a key the federation never saw
    assert (await api.post(url, json=REPORT, headers=stranger.auth())).status_code == 401
    workload = c["aws"].auth(sub="spiffe://aws.isthmus.test/ns/shop/sa/checkout")
    assert (await api.post(url, json=REPORT, headers=workload)).status_code == 403
    admin = {"authorization": f"Bearer {federation.admin_token}"}
    assert (await api.get("/v1/status", headers=c["aws"].auth())).status_code == 401
    assert (await api.get("/v1/status", headers=admin)).status_code == 200
    assert await federation.service.store.get_report("aws") is None


async def test_openapi_lists_every_route(api: httpx.AsyncClient) -> None:
    doc = (await api.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    assert {"/v1/join", "/v1/clusters/{cluster}/snapshot", "/v1/bundles/{trust_domain}"} <= set(
        doc["paths"]
    )
    assert "JoinRequest" in doc["components"]["schemas"]
    assert "HealthReport" in doc["components"]["schemas"]


async def test_early_refusal_of_a_large_body_does_not_take_the_server_down(
    federation: RunningFederation, api: httpx.AsyncClient
) -> None:
    """hypercorn's h2 code crashed the whole trio server when DATA arrived on a stream the app
    had already answered; a large unauthenticated body used to do exactly that."""
    await joined(federation, api, "aws")
    body = b'{"sequence": 1, "sent_at": 1, "pad": "' + b"x" * (512 * 1024) + b'"}'
    refused = await api.post("/v1/clusters/aws/reports", content=body)
    assert refused.status_code == 401
    assert (await api.get("/openapi.json")).status_code == 200


async def test_a_watch_after_a_version_that_is_no_integer_is_named(
    federation: RunningFederation, api: httpx.AsyncClient
) -> None:
    c = await joined(federation, api, "aws")
    response = await api.get("/v1/clusters/aws/snapshot?after=soon", headers=c["aws"].auth())
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["message"] == "after: 'soon' is not an integer version"
    assert error["fields"] == [{"field": "after", "message": "not an integer"}]
