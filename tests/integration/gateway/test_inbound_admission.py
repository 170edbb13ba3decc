"""Who may talk to west's inbound port, checked on real sockets while east's apps keep calling
through it: only known peer gateways of their own trust domain get an answer."""

import json
import logging
import ssl
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import httpx
import pytest
import trio
from cryptography.hazmat.primitives.serialization import Encoding

from federation.model import RoutingModel, load_model_file
from federation.model.api import Snapshot
from federation.trust import CertificateAuthority, client_context
from gateway.identity import ALPN
from tests.helpers.pki import TestCa, issue_svid, make_ca
from tests.integration.gateway.harness import Federation, open_federation
from tests.integration.gateway.test_failover import Traffic, drive, until


async def h2_get(
    port: int, ctx: ssl.SSLContext, authority: str, path: str, *, abrupt: bool = False
) -> int | None:
    """One HTTP/2 GET over mTLS; the status, or None when the gateway closed on us.
    ``abrupt``: drop the TCP connection as soon as the response head arrives."""
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    stream = trio.SSLStream(tcp, ctx)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    headers = [(":method", "GET"), (":scheme", "https"), (":authority", authority), (":path", path)]
    conn.send_headers(1, headers, end_stream=True)
    status = None
    try:
        with trio.fail_after(5):
            await stream.do_handshake()
            await stream.send_all(conn.data_to_send())
            while data := await stream.receive_some(65536):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived):
                        status = int(dict(event.headers)[b":status"])
                        if abrupt:
                            return status
                    if isinstance(event, h2.events.StreamEnded):
                        return status
                await stream.send_all(conn.data_to_send())
    except trio.BrokenResourceError:
        return None
    finally:
        await trio.aclose_forcefully(stream)
    return None


def ca_of(fed: Federation, cluster: str) -> TestCa:
    ca = CertificateAuthority.load(fed.root / cluster / "ca")
    return TestCa(ca.trust_domain, ca.root, ca.signing_key)  # type: ignore[arg-type]


async def test_only_known_peers_of_their_own_trust_domain_are_answered(tmp_path: Path) -> None:
    traffic = Traffic()
    async with open_federation(tmp_path, ("east", "west", "north")) as fed:
        west = fed["west"].spec.inbound_port
        bundles = fed["east"].gateway.identity.bundles  # type: ignore[union-attr]
        good = fed["east"].gateway.identity.client_context_for(None)  # type: ignore[union-attr, arg-type]

        def forged(signer: TestCa, claimed: str) -> ssl.SSLContext:
            return client_context(issue_svid(signer, claimed), bundles, ALPN)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drive, "http://catalog.shop.global/", fed["east"].outbound, traffic)
            await until(lambda: len(traffic.served_by) >= 10, 5, "good traffic")
            assert await h2_get(west, good, "isthmus-gateway", "/readyz") == 200
            rogue = make_ca("rogue.isthmus.local")
            attempts = [
                forged(rogue, "spiffe://rogue.isthmus.local/isthmus/gateway/east"),
                forged(ca_of(fed, "north"), "spiffe://east.isthmus.local/isthmus/gateway/east"),
                forged(ca_of(fed, "north"), "spiffe://north.isthmus.local/isthmus/gateway/east"),
                forged(ca_of(fed, "east"), "spiffe://east.isthmus.local/ns/shop/sa/web"),
            ]
            for index, ctx in enumerate(attempts):
                assert await h2_get(west, ctx, "catalog.shop.global", "/") is None, index
            plain = await trio.open_tcp_stream("127.0.0.1", west)
            async with plain:
                await plain.send_all(b"GET / HTTP/1.1\r\nhost: catalog.shop.global\r\n\r\n")
                with trio.fail_after(5):
                    answer = await plain.receive_some(4096)
            assert answer.startswith(b"HTTP/1.1 400")
            assert b"mutual TLS" in answer
            served = len(traffic.served_by)
            await until(lambda: len(traffic.served_by) >= served + 10, 5, "traffic after attacks")
            nursery.cancel_scope.cancel()
    assert traffic.failures == []


async def test_a_peer_dropping_its_connection_mid_response_does_not_stop_the_listener(
    tmp_path: Path,
) -> None:
    async with open_federation(tmp_path) as fed:
        west = fed["west"].spec.inbound_port
        good = fed["east"].gateway.identity.client_context_for(None)  # type: ignore[union-attr, arg-type]
        for _ in range(20):
            assert await h2_get(west, good, "isthmus-gateway", "/readyz", abrupt=True) == 200
        assert await h2_get(west, good, "isthmus-gateway", "/readyz") == 200


async def test_http1_over_tls_is_refused_on_the_inbound_port(tmp_path: Path) -> None:
    async with open_federation(tmp_path) as fed:
        identity = fed["east"].gateway.identity  # type: ignore[union-attr]
        ctx = client_context(identity.svid, identity.bundles, ["http/1.1"])
        tcp = await trio.open_tcp_stream("127.0.0.1", fed["west"].spec.inbound_port)
        stream = trio.SSLStream(tcp, ctx)
        got = b""
        try:
            with trio.fail_after(5):
                await stream.do_handshake()
                await stream.send_all(b"GET / HTTP/1.1\r\nhost: catalog.shop.global\r\n\r\n")
                got = await stream.receive_some(4096)
        except trio.BrokenResourceError:
            got = b""
        finally:
            await trio.aclose_forcefully(stream)
        assert got == b""


async def test_rotated_svid_files_are_served_to_new_connections_under_traffic(
    tmp_path: Path,
) -> None:
    traffic = Traffic()
    async with open_federation(tmp_path) as fed:
        west = fed["west"]
        assert west.gateway is not None and fed["east"].gateway is not None
        config = west.gateway.config
        client = fed["east"].gateway.identity.client_context_for(None)  # type: ignore[arg-type]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drive, "http://catalog.shop.global/", fed["east"].outbound, traffic)
            await until(lambda: len(traffic.served_by) >= 10, 5, "traffic")
            fresh = issue_svid(
                ca_of(fed, "west"), "spiffe://west.isthmus.local/isthmus/gateway/west"
            )
            fresh.save(config.identity.svid.parent)
            await until(lambda: west.gateway.identity.svid.leaf == fresh.leaf, 5, "rotation")  # type: ignore[union-attr]
            tcp = await trio.open_tcp_stream("127.0.0.1", west.spec.inbound_port)
            tls = trio.SSLStream(tcp, client)
            with trio.fail_after(5):
                await tls.do_handshake()
            served = tls.getpeercert(binary_form=True)
            await trio.aclose_forcefully(tls)
            count = len(traffic.served_by)
            await until(lambda: len(traffic.served_by) >= count + 10, 5, "traffic after rotation")
            nursery.cancel_scope.cancel()
    assert served == fresh.leaf.public_bytes(Encoding.DER)
    assert traffic.failures == []


async def test_a_dialled_peer_presenting_another_identity_is_never_sent_a_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """east's routing says west lives at north's address: north answers the handshake with
    north's SVID, east refuses it before sending anything and fails over to the real north."""
    async with open_federation(tmp_path, ("east", "west", "north")) as fed:
        east = fed["east"].gateway
        assert east is not None
        model = load_model_file(RoutingModel, east.config.routing_file)
        north_address = f"127.0.0.1:{fed['north'].spec.inbound_port}"
        peers = tuple(
            p.model_copy(update={"addresses": (north_address,)}) if p.cluster == "west" else p
            for p in model.peers
        )
        east.apply_snapshot(
            Snapshot(version=2, routing=model.model_copy(update={"version": 2, "peers": peers})),
            east.identity.bundles,
        )
        caplog.set_level(logging.INFO, logger="isthmus.access")
        north_before = fed["north"].stats.requests
        async with httpx.AsyncClient(proxy=fed["east"].outbound, timeout=5) as client:
            answers = [
                (await client.get("http://catalog.shop.global/")).json()["cluster"]
                for _ in range(10)
            ]
    assert answers == ["north"] * 10
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "isthmus.access"]
    first = next(line for line in lines if line["listener"] == "outbound")
    assert first["retries"] == 1  # the impostor was dialled, refused, and north was tried
    assert fed["west"].stats.requests == 0
    assert fed["north"].stats.requests - north_before == 10
