"""A local app in cluster east reaches a backend in cluster west through both gateways (separate
trust domains, real mTLS, real sockets): HTTP/1.1 proxy and Host forms, h2c, CONNECT."""

import json
import logging
from pathlib import Path

import httpx
import pytest
import trio

from tests.integration.gateway.harness import open_federation


async def test_http1_proxy_and_host_forms_cross_and_come_back(tmp_path: Path) -> None:
    async with open_federation(tmp_path) as fed:
        async with httpx.AsyncClient(proxy=fed["east"].outbound, timeout=5) as client:
            resp = await client.get("http://catalog.shop.global/items?id=7")
        assert resp.status_code == 200
        doc = resp.json()
        assert doc["cluster"] == "west"
        assert doc["path"] == "/items?id=7"
        assert doc["isthmus_headers"]["x-isthmus-source-cluster"] == "east"
        assert doc["traceparent"]
        async with httpx.AsyncClient(base_url=fed["east"].outbound, timeout=5) as client:
            resp = await client.post(
                "/upload", content=b"x" * 100_000, headers={"host": "catalog.shop.global"}
            )
        assert resp.status_code == 200
        assert resp.json()["body_bytes"] == 100_000
        assert fed["west"].stats.requests == 2


async def test_h2c_prior_knowledge_crosses(tmp_path: Path) -> None:
    async with open_federation(tmp_path) as fed:
        async with httpx.AsyncClient(
            base_url=fed["east"].outbound, http1=False, http2=True, timeout=5
        ) as client:
            responses = [
                await client.get(f"/n/{i}", headers={"host": "catalog.shop.global"})
                for i in range(5)
            ]
        assert {r.http_version for r in responses} == {"HTTP/2"}
        assert [r.json()["cluster"] for r in responses] == ["west"] * 5


async def test_connect_tunnels_tcp_to_the_other_cluster(tmp_path: Path) -> None:
    async with open_federation(tmp_path) as fed:
        target = f"echo.tcp.global:{fed['west'].echo_port}"
        stream = await trio.open_tcp_stream("127.0.0.1", fed["east"].spec.outbound_port)
        async with stream:
            await stream.send_all(f"CONNECT {target} HTTP/1.1\r\nhost: {target}\r\n\r\n".encode())
            head = b""
            with trio.fail_after(5):
                while b"\r\n\r\n" not in head:
                    head += await stream.receive_some(4096)
            assert head.startswith(b"HTTP/1.1 200")
            payload = bytes(range(256)) * 1024
            received = bytearray(head.split(b"\r\n\r\n", 1)[1])
            await stream.send_all(payload)
            with trio.fail_after(5):
                while len(received) < len(payload):
                    received += await stream.receive_some(65536)
            assert bytes(received) == payload


async def test_spoofed_isthmus_header_from_a_local_app_is_dropped(tmp_path: Path) -> None:
    async with open_federation(tmp_path) as fed:
        async with httpx.AsyncClient(proxy=fed["east"].outbound, timeout=5) as client:
            resp = await client.get(
                "http://catalog.shop.global/",
                headers={
                    "x-isthmus-source-cluster": "west",
                    "x-isthmus-source-identity": "spiffe://west.isthmus.local/isthmus/gateway/west",
                    "x-isthmus-anything": "1",
                },
            )
        seen = resp.json()["isthmus_headers"]
        # west's backend sees what east's gateway proved with mTLS, not what the app claimed
        assert seen == {
            "x-isthmus-source-cluster": "east",
            "x-isthmus-source-identity": "spiffe://east.isthmus.local/isthmus/gateway/east",
        }


async def test_unknown_service_is_404_naming_it(tmp_path: Path) -> None:
    async with open_federation(tmp_path) as fed:
        async with httpx.AsyncClient(proxy=fed["east"].outbound, timeout=5) as client:
            resp = await client.get("http://nothing.shop.global/")
        assert resp.status_code == 404
        assert "nothing.shop" in resp.text


async def test_metrics_config_and_access_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="isthmus.access")
    async with open_federation(tmp_path) as fed:
        async with httpx.AsyncClient(proxy=fed["east"].outbound, timeout=5) as client:
            for _ in range(3):
                assert (await client.get("http://catalog.shop.global/")).status_code == 200
        async with httpx.AsyncClient(timeout=5) as admin:
            east = (await admin.get(f"{fed['east'].admin}/metrics")).text
            west = (await admin.get(f"{fed['west'].admin}/metrics")).text
            config = (await admin.get(f"{fed['east'].admin}/config")).json()
            ready = await admin.get(f"{fed['east'].admin}/readyz")
        assert ready.status_code == 200
        assert (
            'isthmus_requests_total{destination_cluster="west",destination_service='
            '"catalog.shop",response_code="200",source_cluster="east"} 3.0'
        ) in east
        assert 'source_cluster="east"} 3.0' in west  # west counts the inbound side
        assert "isthmus_request_duration_seconds_bucket" in east
        assert 'isthmus_peer_healthy{peer_cluster="west"} 1.0' in east
        assert "isthmus_svid_expiry_timestamp_seconds 1." in east
        route = config["table"]["routes"]["catalog.shop"]
        assert route["priorities"][0]["endpoints"][0]["kind"] == "peer"
        (level,) = config["live"]["services"]["catalog.shop"]
        assert (level["load_percent"], level["panic"]) == (100.0, False)
        assert level["endpoints"][0]["cluster"] == "west"
        assert level["endpoints"][0]["healthy"] is True
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "isthmus.access"]
    outbound = [line for line in lines if line["listener"] == "outbound"]
    assert len(outbound) == 3
    first = outbound[0]
    assert (first["service"], first["cluster"], first["status"]) == ("catalog.shop", "west", 200)
    assert first["retries"] == 0 and first["duration_ms"] > 0
    inbound = [line for line in lines if line["listener"] == "inbound"]
    assert inbound and inbound[0]["source_cluster"] == "east"
    assert inbound[0]["source_identity"] == "spiffe://east.isthmus.local/isthmus/gateway/east"
    # one request's line on east and on west share its W3C trace id
    assert len({line["trace_id"] for line in outbound}) == 3
    assert all(len(line["trace_id"]) == 32 for line in outbound)
    assert {line["trace_id"] for line in inbound} == {line["trace_id"] for line in outbound}
