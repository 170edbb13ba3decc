"""Signed bundle updates through the API: only the owner, only signed by a current key, only up."""

from __future__ import annotations

from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from federation.service.server import RunningFederation
from federation.trust import TrustBundle, TrustDomain, parse_bundle
from federation.trust.signed_bundle import sign_bundle_update
from tests.integration.federation.conftest import FakeCluster, joined


def rotated(cluster: FakeCluster, sequence: int) -> TrustBundle:
    """The cluster's bundle with a second jwt-svid key added, at ``sequence``."""
    extra = ec.generate_private_key(ec.SECP256R1()).public_key()
    keys = {cluster.kid: cluster.jwt_key.public_key(), f"{cluster.name}-jwt-2": extra}
    return TrustBundle(TrustDomain(cluster.td), (cluster.ca.root,), keys, sequence)


def update_body(bundle: TrustBundle, key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    return {"signed_update": sign_bundle_update(bundle, key, kid).decode()}


async def test_owner_publishes_a_signed_update_and_everyone_gets_it(
    federation: RunningFederation, api: httpx.AsyncClient
) -> None:
    c = await joined(federation, api, "aws", "gcp")
    aws = c["aws"]
    body = update_body(rotated(aws, 2), aws.jwt_key, aws.kid)
    response = await api.put(f"/v1/bundles/{aws.td}", json=body, headers=aws.auth())
    assert response.status_code == 204, response.text
    served = parse_bundle(TrustDomain(aws.td), (await api.get(f"/v1/bundles/{aws.td}")).text)
    assert served.sequence == 2 and len(served.jwt_authorities) == 2
    for _ in range(20):
        snap = (await api.get("/v1/clusters/gcp/snapshot", headers=c["gcp"].auth())).json()
        if aws.td in snap["bundle_updates"]:
            break
    assert snap["bundle_updates"][aws.td] == body["signed_update"]


async def test_forged_and_stale_updates_are_refused_and_nothing_changes(
    federation: RunningFederation, api: httpx.AsyncClient
) -> None:
    c = await joined(federation, api, "aws", "gcp")
    aws, gcp = c["aws"], c["gcp"]
    url = f"/v1/bundles/{aws.td}"
    intruder = ec.generate_private_key(ec.SECP256R1())
    forged = await api.put(
        url, json=update_body(rotated(aws, 5), intruder, aws.kid), headers=aws.auth()
    )
    assert forged.status_code == 422
    assert forged.json()["error"]["reason"] == "bad-signature"
    stale = await api.put(
        url, json=update_body(rotated(aws, 1), aws.jwt_key, aws.kid), headers=aws.auth()
    )
    assert stale.status_code == 409
    assert stale.json()["error"]["reason"] == "stale-sequence"
    other = await api.put(
        url, json=update_body(rotated(aws, 9), gcp.jwt_key, gcp.kid), headers=gcp.auth()
    )
    assert other.status_code == 403
    assert "own trust domain" in other.json()["error"]["message"]
    served = parse_bundle(TrustDomain(aws.td), (await api.get(url)).text)
    assert served.sequence == 1
    metrics = (await api.get("/metrics")).text
    assert 'isthmus_federation_rejected_updates_total{reason="bad-signature"} 1.0' in metrics
    assert 'isthmus_federation_rejected_updates_total{reason="stale-sequence"} 1.0' in metrics


async def test_a_rotated_jwt_key_ends_a_verified_token_at_once(
    federation: RunningFederation, api: httpx.AsyncClient
) -> None:
    """A verified token is remembered until it expires — unless its trust domain's bundle
    changes: then the next request is verified against the new bundle."""
    c = await joined(federation, api, "aws", "gcp")
    aws = c["aws"]
    old_token = aws.auth(ttl=120)
    report = {"sequence": 1, "sent_at": 1.0}
    for _ in range(2):  # verified once, then remembered
        ok = await api.post("/v1/clusters/aws/reports", json=report, headers=old_token)
        assert ok.status_code == 204, ok.text
    new_key = ec.generate_private_key(ec.SECP256R1())
    only_new = TrustBundle(
        TrustDomain(aws.td), (aws.ca.root,), {"aws-jwt-2": new_key.public_key()}, 2
    )  # the old key is gone from the bundle
    body = update_body(only_new, aws.jwt_key, aws.kid)
    response = await api.put(f"/v1/bundles/{aws.td}", json=body, headers=old_token)
    assert response.status_code == 204, response.text
    for _ in range(50):  # the store announces the change to the authenticator
        refused = await api.post("/v1/clusters/aws/reports", json=report, headers=old_token)
        if refused.status_code != 204:
            break
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["reason"] == "bad-jwt"
    aws.jwt_key, aws.kid = new_key, "aws-jwt-2"
    ok = await api.post("/v1/clusters/aws/reports", json=report, headers=aws.auth())
    assert ok.status_code == 204, ok.text
