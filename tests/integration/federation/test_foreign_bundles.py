"""Foreign trust domains: the federation consumes a SPIRE-style (https_web) bundle endpoint
served by a real local HTTPS server whose certificate comes from a test web CA."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import hypercorn.trio
import pytest
import trio
from cryptography.hazmat.primitives.asymmetric import ec
from hypercorn.config import Config

from federation.service.foreign import (
    ForeignBundleError,
    ForeignBundles,
    ForeignTrustDomain,
    check_foreign_update,
    fetch_foreign_bundle,
    refresh_delay,
)
from federation.service.tls import ensure_federation_tls
from federation.trust import CertificateAuthority, TrustBundle, TrustDomain
from tests.integration.federation.conftest import (
    FakeCluster,
    client_for,
    fed_config,
    start_federation,
)

SPIRE_TD = TrustDomain("spire.example.test")


def spire_bundle(sequence: int, hint: int | None = 1, td: TrustDomain = SPIRE_TD) -> str:
    ca = CertificateAuthority.create(td, now=datetime.now(UTC))
    jwt_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return TrustBundle(td, (ca.root,), {f"spire-{sequence}": jwt_key}, sequence, hint).to_json()


@dataclass
class BundleEndpoint:
    """A SPIFFE bundle endpoint (https_web): GET / answers the current bundle."""

    body: str
    status: int = 200
    hits: int = 0

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].split(".")[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        self.hits += 1
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": self.body.encode()})


async def serve_endpoint(
    nursery: trio.Nursery, tmp_path: Path, app: BundleEndpoint
) -> tuple[str, Path]:
    """Serve ``app`` over HTTPS with a web certificate for 127.0.0.1 from a fresh test CA."""
    tls = ensure_federation_tls(tmp_path / "web-ca", hosts=("127.0.0.1", "localhost"))
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.certfile, config.keyfile = str(tls.cert_path), str(tls.key_path)
    config.accesslog = config.errorlog = None
    binds = await nursery.start(partial(hypercorn.trio.serve, app, config, mode="asgi"))  # type: ignore[arg-type]
    port = binds[0].rsplit(":", 1)[1]
    return f"https://127.0.0.1:{port}/bundle", tls.ca_path


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.02)


async def test_federation_serves_the_foreign_bundle_and_refreshes_per_hint(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    endpoint = BundleEndpoint(spire_bundle(1, hint=1))
    url, web_ca = await serve_endpoint(nursery, tmp_path, endpoint)
    foreign = {"trust_domain": SPIRE_TD.name, "bundle_endpoint_url": url, "ca_file": web_ca}
    fed = await start_federation(nursery, fed_config(tmp_path, foreign_trust_domains=[foreign]))
    async with client_for(fed) as api:

        async def served() -> Any:
            answer = await api.get(f"/v1/bundles/{SPIRE_TD.name}")
            return answer.json() if answer.status_code == 200 else None

        with trio.fail_after(5):
            while (doc := await served()) is None:
                await trio.sleep(0.02)
        assert doc == json.loads(endpoint.body)
        endpoint.body = spire_bundle(2, hint=1)  # SPIRE rotated: seen after the 1 s hint
        started = trio.current_time()
        with trio.fail_after(5):
            while (await served())["spiffe_sequence"] != 2:
                await trio.sleep(0.05)
        assert 0.5 < trio.current_time() - started < 3.0
        # never relayed to gateways: a member's snapshot carries no foreign bundle
        cluster = FakeCluster("aws")
        token = await fed.service.create_join_token("aws")
        assert (await api.post("/v1/join", json=cluster.join_body(token))).status_code == 201
        snap = await api.get("/v1/clusters/aws/snapshot", headers=cluster.auth())
        assert snap.status_code == 200, snap.text
        assert SPIRE_TD.name not in snap.json()["bundles"] and cluster.td in snap.json()["bundles"]


async def test_a_cluster_cannot_join_as_a_foreign_trust_domain(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    url, web_ca = await serve_endpoint(nursery, tmp_path, BundleEndpoint(spire_bundle(1)))
    foreign = {"trust_domain": SPIRE_TD.name, "bundle_endpoint_url": url, "ca_file": web_ca}
    fed = await start_federation(nursery, fed_config(tmp_path, foreign_trust_domains=[foreign]))
    impostor = FakeCluster("spire.example")  # its trust domain is spire.example.isthmus.test
    token = await fed.service.create_join_token("spire")
    body = impostor.join_body(token, trust_domain=SPIRE_TD.name)
    ca = CertificateAuthority.create(SPIRE_TD, now=datetime.now(UTC))
    body["trust_bundle"] = TrustBundle(
        SPIRE_TD, (ca.root,), {"k": impostor.jwt_key.public_key()}, 1
    ).to_json()
    async with client_for(fed) as api:
        refused = await api.post("/v1/join", json=body)
    assert refused.status_code == 409
    assert refused.json()["error"]["reason"] == "trust-domain-foreign"


async def test_endpoint_not_signed_by_a_trusted_web_ca_is_refused(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    url, _ = await serve_endpoint(nursery, tmp_path, BundleEndpoint(spire_bundle(1)))
    source = ForeignTrustDomain(trust_domain=SPIRE_TD.name, bundle_endpoint_url=url)
    with pytest.raises(ForeignBundleError, match="fetch failed") as info:
        await fetch_foreign_bundle(source)  # system roots do not know the test web CA
    assert info.value.reason == "foreign-unreachable"
    foreign = ForeignBundles([source], clock=trio.current_time)
    state = await foreign.refresh(SPIRE_TD.name)
    assert state.bundle is None and state.failures == 1 and "fetch failed" in state.last_error
    assert state.next_refresh_at is not None and state.next_refresh_at - trio.current_time() <= 1.5


async def test_bad_answers_are_refused_and_the_last_good_bundle_kept(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    endpoint = BundleEndpoint(spire_bundle(5))
    url, web_ca = await serve_endpoint(nursery, tmp_path, endpoint)
    source = ForeignTrustDomain(trust_domain=SPIRE_TD.name, bundle_endpoint_url=url, ca_file=web_ca)
    foreign = ForeignBundles([source], clock=trio.current_time)
    good = await foreign.refresh(SPIRE_TD.name)
    assert good.bundle is not None and good.bundle.sequence == 5
    for body, status, why in (
        (spire_bundle(4), 200, "below"),  # rollback
        (spire_bundle(6, td=TrustDomain("other.test")), 200, "other.test"),  # another td's CA
        ('{"keys": 3}', 200, "keys"),
        ("nope", 503, "HTTP 503"),
    ):
        endpoint.body, endpoint.status = body, status
        state = await foreign.refresh(SPIRE_TD.name)
        assert why in state.last_error, state.last_error
        assert state.bundle == good.bundle
    assert json.loads(foreign.bundle_json(SPIRE_TD.name))["spiffe_sequence"] == 5


def test_refresh_delay_and_config_validation() -> None:
    bundle = TrustBundle(SPIRE_TD, (), {}, 1, 60)
    assert refresh_delay(bundle, None) == 60
    assert refresh_delay(bundle, 5) == 5
    assert refresh_delay(None, None) == 300
    assert refresh_delay(TrustBundle(SPIRE_TD, (), {}, 1, 0), None) == 300
    assert check_foreign_update(None, bundle) == bundle
    with pytest.raises(ValueError, match="https"):
        ForeignTrustDomain(trust_domain="x.test", bundle_endpoint_url="http://x.test/b")
    with pytest.raises(ValueError):
        ForeignTrustDomain(trust_domain="spiffe://x.test/bad", bundle_endpoint_url="https://x")
