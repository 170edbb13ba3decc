"""Real TLS 1.3 handshakes (over in-memory streams) between gateways of separate trust domains:
who the inbound side admits and what the outbound side insists on."""

import ssl
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio
import trio.testing

from federation.model import RoutingModel, load_model_file
from federation.trust import CertificateAuthority, X509Svid, client_context
from gateway.config import GatewayConfig
from gateway.errors import IdentityError, PeerRejected
from gateway.identity import ALPN, GatewayIdentity
from gateway.translate import translate_model
from isthmus.runner import ClusterSpec, ServiceSpec, write_local_federation
from proxy.listeners import PeerIdentity
from tests.helpers.pki import TestCa, issue_svid, make_ca

CLUSTERS = [
    ClusterSpec("east", "aws", "us-east-1", 1, 2, 3),
    ClusterSpec("west", "gcp", "europe-west1", 4, 5, 6),
    ClusterSpec("north", "azure", "westeurope", 7, 8, 9),
]
SERVICES = [ServiceSpec("catalog.shop", {"west": ("127.0.0.1:9",), "north": ("127.0.0.1:9",)})]


class Fed:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.configs = write_local_federation(root, CLUSTERS, SERVICES, now=datetime.now(UTC))
        self.ids: dict[str, GatewayIdentity] = {}
        self.models: dict[str, RoutingModel] = {}
        for name, path in self.configs.items():
            config = GatewayConfig.from_file(path)
            self.ids[name] = GatewayIdentity.load(config)
            self.models[name] = load_model_file(RoutingModel, config.routing_file)
            self.ids[name].set_model(self.models[name])

    def ca(self, cluster: str) -> TestCa:
        ca = CertificateAuthority.load(self.root / cluster / "ca")
        return TestCa(ca.trust_domain, ca.root, ca.signing_key)  # type: ignore[arg-type]

    def forged_client(self, signer: str, spiffe_id: str) -> ssl.SSLContext:
        svid = issue_svid(self.ca(signer), spiffe_id)
        return client_context(svid, self.ids["east"].bundles, ALPN)


@pytest.fixture
def fed(tmp_path: Path) -> Fed:
    return Fed(tmp_path)


async def handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    left, right = trio.testing.memory_stream_pair()
    server = trio.SSLStream(left, server_ctx, server_side=True)
    client = trio.SSLStream(right, client_ctx)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.do_handshake)
        nursery.start_soon(client.do_handshake)
    return server._ssl_object, client._ssl_object  # type: ignore[attr-defined]


async def test_known_peer_is_admitted_and_dialled_peer_checked(fed: Fed) -> None:
    west, east = fed.ids["west"], fed.ids["east"]
    endpoint = translate_model(fed.models["east"]).routes["catalog.shop"].priorities[0].endpoints[0]
    assert endpoint.expected_identity == "spiffe://west.isthmus.local/isthmus/gateway/west"
    server_side, client_side = await handshake(
        west.server_context, east.client_context_for(endpoint)
    )
    assert server_side.version() == "TLSv1.3"
    assert server_side.selected_alpn_protocol() == "h2"
    assert west.verify_inbound_peer(server_side) == PeerIdentity(
        cluster="east", identity="spiffe://east.isthmus.local/isthmus/gateway/east"
    )
    east.verify_outbound_peer(endpoint, client_side)
    impostor = replace(
        endpoint, expected_identity="spiffe://north.isthmus.local/isthmus/gateway/north"
    )
    with pytest.raises(PeerRejected) as err:
        east.verify_outbound_peer(impostor, client_side)
    assert err.value.reason == "unexpected-identity"


@pytest.mark.parametrize(
    ("signer", "claimed", "reason"),
    [
        # north's CA is trusted (OpenSSL store is the union) but may only vouch for north
        ("north", "spiffe://east.isthmus.local/isthmus/gateway/east", "chain-invalid"),
        # a north identity claiming to be east's gateway: right chain, wrong trust domain
        ("north", "spiffe://north.isthmus.local/isthmus/gateway/east", "wrong-trust-domain"),
        ("east", "spiffe://east.isthmus.local/ns/shop/sa/web", "not-a-gateway"),
        ("east", "spiffe://east.isthmus.local/isthmus/gateway/south", "unknown-peer"),
    ],
)
async def test_bad_peer_identities_are_rejected_by_reason(
    fed: Fed, signer: str, claimed: str, reason: str
) -> None:
    server_side, _ = await handshake(
        fed.ids["west"].server_context, fed.forged_client(signer, claimed)
    )
    with pytest.raises(PeerRejected) as err:
        fed.ids["west"].verify_inbound_peer(server_side)
    assert err.value.reason == reason


async def test_certificate_from_an_unknown_trust_domain_fails_the_handshake(fed: Fed) -> None:
    rogue = issue_svid(
        make_ca("rogue.isthmus.local"), "spiffe://rogue.isthmus.local/isthmus/gateway/east"
    )
    ctx = client_context(rogue, fed.ids["east"].bundles, ALPN)
    with pytest.raises(ExceptionGroup) as err:
        await handshake(fed.ids["west"].server_context, ctx)
    assert err.group_contains(trio.BrokenResourceError)


async def test_a_peer_removed_from_the_model_is_no_longer_admitted(fed: Fed) -> None:
    west = fed.ids["west"]
    without_east = fed.models["west"].model_copy(
        update={"peers": tuple(p for p in fed.models["west"].peers if p.cluster != "east")}
    )
    west.set_model(without_east)
    server_side, _ = await handshake(west.server_context, fed.ids["east"].client_context_for(None))  # type: ignore[arg-type]
    with pytest.raises(PeerRejected, match="not a peer"):
        west.verify_inbound_peer(server_side)


def test_identity_files_are_checked_at_load(fed: Fed) -> None:
    config = GatewayConfig.from_file(fed.configs["east"])
    (fed.root / "west" / "svid.pem").replace(config.identity.svid)
    (fed.root / "west" / "svid.key").replace(config.identity.key)
    with pytest.raises(IdentityError, match="but this gateway is spiffe://east"):
        GatewayIdentity.load(config)
    config.identity.svid.unlink()
    with pytest.raises(IdentityError, match="svid.pem: cannot read"):
        GatewayIdentity.load(config)


def test_rotated_files_are_picked_up_and_broken_ones_ignored(fed: Fed) -> None:
    east = fed.ids["east"]
    config = GatewayConfig.from_file(fed.configs["east"])
    before = east.svid
    assert not east.reload_files()
    fresh = issue_svid(fed.ca("east"), "spiffe://east.isthmus.local/isthmus/gateway/east")
    X509Svid.save(fresh, config.identity.svid.parent)
    assert east.reload_files()
    assert east.svid.leaf != before.leaf
    config.identity.svid.write_text("garbage")
    assert not east.reload_files()
    assert east.svid.leaf == fresh.leaf
