"""A federated gateway trusts a foreign (SPIRE) trust domain only as its own fetch of that
domain's ``https_web`` bundle endpoint says, never as the federation says.

Real processes' parts in-process: a federation (hypercorn, TLS 1.3, SQLite), a bundle endpoint
over HTTPS with a web certificate from a test web CA, and a gateway (``serve_gateway``) that
joins with a token. The federation is made to serve a *different* bundle for the foreign
domain (a cluster joined under that name: what a compromised federation would do).
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import cast

import pytest
import trio
import yaml

from federation.client import ClientStateDir
from federation.service.server import RunningFederation
from federation.trust import (
    BundleSet,
    CertificateAuthority,
    SpiffeId,
    TrustBundle,
    TrustDomain,
    X509Svid,
    client_context,
    issue_x509_svid,
)
from gateway.config import GatewayConfig
from gateway.errors import GatewayConfigError
from gateway.identity import GatewayIdentity
from gateway.run import RunningGateway, serve_gateway
from isthmus.runner import ClusterSpec, write_local_federation
from tests.integration.federation.conftest import (
    FakeCluster,
    client_for,
    fed_config,
    start_federation,
)
from tests.integration.federation.test_foreign_bundles import BundleEndpoint, serve_endpoint
from tests.integration.gateway.harness import free_ports

FOREIGN = "spire.isthmus.test"  # FakeCluster("spire")'s domain: the federation can serve one


def foreign_svid(ca: CertificateAuthority) -> X509Svid:
    return issue_x509_svid(
        ca,
        SpiffeId.parse(f"spiffe://{FOREIGN}/ns/shop/sa/reporting"),
        now=datetime.now(UTC),
        ttl=timedelta(hours=1),
    )


async def server_accepts(identity: GatewayIdentity, svid: X509Svid) -> bool:
    """A real TLS 1.3 handshake on 127.0.0.1: the gateway's current inbound context (what its
    listeners hand every new handshake) against a client presenting ``svid``."""
    client = client_context(svid, BundleSet(), ("h2",))
    client.verify_mode = ssl.CERT_NONE  # only the server's verdict on the client matters here
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    verdict: list[bool] = []
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:

            async def dial() -> None:
                stream = trio.SSLStream(await trio.open_tcp_stream("127.0.0.1", port), client)
                try:
                    await stream.do_handshake()
                    await stream.receive_some(1)  # the server's alert or close
                except trio.BrokenResourceError:
                    pass
                finally:
                    await trio.aclose_forcefully(stream)

            nursery.start_soon(dial)
            raw = await listener.accept()
            server = trio.SSLStream(raw, identity.server_context, server_side=True)
            try:
                await server.do_handshake()
                verdict.append(True)
            except trio.BrokenResourceError:
                verdict.append(False)
            await trio.aclose_forcefully(server)
    await listener.aclose()
    return verdict[0]


def gateway_yaml(root: Path, url: str, web_ca: Path) -> Path:
    inbound, outbound, admin = free_ports(3)
    spec = ClusterSpec("east", "aws", "us-east-1", inbound, outbound, admin)
    path = write_local_federation(root, [spec], [], now=datetime.now(UTC))["east"]
    doc = yaml.safe_load(path.read_text())
    doc["access_log"] = False
    doc["federation"] = {
        "state_dir": str(root / "east" / "state"),
        "report_interval_s": 0.2,
        "long_poll_s": 2,
        "backoff_base_s": 0.05,
        "backoff_cap_s": 0.5,
        "foreign_trust_domains": [
            {"trust_domain": FOREIGN, "bundle_endpoint_url": url, "ca_file": str(web_ca)}
        ],
    }
    path.write_text(yaml.safe_dump(doc))
    return path


async def wait_for_foreign(gateway: RunningGateway, sequence: int) -> None:
    with trio.fail_after(10):
        while True:
            held = gateway.identity.bundles.get(TrustDomain(FOREIGN))
            if held is not None and held.sequence == sequence:
                return
            await trio.sleep(0.02)


async def test_gateway_trusts_its_own_fetch_and_ignores_the_federations_bundle(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    spire = CertificateAuthority.create(TrustDomain(FOREIGN), now=datetime.now(UTC))
    endpoint = BundleEndpoint(TrustBundle(TrustDomain(FOREIGN), (spire.root,), {}, 1, 1).to_json())
    url, web_ca = await serve_endpoint(nursery, tmp_path, endpoint)

    fed: RunningFederation = await start_federation(nursery, fed_config(tmp_path))
    impostor = FakeCluster("spire")  # the federation now serves ITS bundle for FOREIGN
    async with client_for(fed) as api:
        token = await fed.service.create_join_token("spire")
        assert (await api.post("/v1/join", json=impostor.join_body(token))).status_code == 201
    config = GatewayConfig.from_file(gateway_yaml(tmp_path / "clusters", url, web_ca))
    gateway: RunningGateway = await nursery.start(
        partial(
            serve_gateway,
            config,
            join_token=await fed.service.create_join_token("east"),
            handle_signals=False,
            freeze_gc=False,
        )
    )
    await wait_for_foreign(gateway, sequence=1)
    state = ClientStateDir(tmp_path / "clusters" / "east" / "state" / "federation")
    with trio.fail_after(10):  # a snapshot carrying the impostor's bundle was applied and ACKed
        while (await fed.service.store.get_ack_state("east")).acked_version < 1:
            await trio.sleep(0.02)
    persisted = state.load_snapshot()
    assert persisted is not None and FOREIGN in persisted.snapshot.bundles
    join = state.load_join()
    assert join is not None and FOREIGN in join.bundles  # served at join time as well

    assert await server_accepts(gateway.identity, foreign_svid(spire))
    impostor_ca = impostor.ca
    assert not await server_accepts(gateway.identity, foreign_svid(impostor_ca))
    assert gateway.identity.bundles[TrustDomain(FOREIGN)].x509_authorities == (spire.root,)

    # The endpoint rotates: the gateway follows the endpoint (sequence 2, per the 1 s hint).
    rotated = CertificateAuthority.create(TrustDomain(FOREIGN), now=datetime.now(UTC))
    endpoint.body = TrustBundle(TrustDomain(FOREIGN), (rotated.root,), {}, 2, 1).to_json()
    await wait_for_foreign(gateway, sequence=2)
    assert await server_accepts(gateway.identity, foreign_svid(rotated))
    assert not await server_accepts(gateway.identity, foreign_svid(impostor_ca))
    assert gateway.status.federation is not None
    (shown,) = cast(list[dict[str, object]], gateway.status.federation()["foreign_trust_domains"])
    assert {k: v for k, v in shown.items() if k != "fetched_at"} == {  # the admin API's /status
        "trust_domain": FOREIGN,
        "url": url,
        "sequence": 2,
        "failures": 0,
        "last_error": "",
    }
    gateway.stop()


def test_own_trust_domain_cannot_be_foreign(tmp_path: Path) -> None:
    doc = {
        "cluster": "east",
        "trust_domain": "east.isthmus.test",
        "locality": {"cloud": "aws", "region": "us-east-1"},
        "federation": {
            "foreign_trust_domains": [
                {"trust_domain": "east.isthmus.test", "bundle_endpoint_url": "https://x.test/"}
            ]
        },
    }
    with pytest.raises(GatewayConfigError, match="foreign_trust_domains.*own trust domain"):
        GatewayConfig.from_mapping(doc)
    relative = {**doc, "trust_domain": "west.isthmus.test"}
    relative["federation"] = {
        "foreign_trust_domains": [
            {
                "trust_domain": "east.isthmus.test",
                "bundle_endpoint_url": "https://x.test/",
                "ca_file": "web-ca.pem",
            }
        ]
    }
    resolved = GatewayConfig.from_mapping(relative).resolved(tmp_path)
    assert resolved.federation is not None
    assert resolved.federation.foreign_trust_domains[0].ca_file == tmp_path / "web-ca.pem"
