"""The inbound (mTLS, h2-only) listener refuses plaintext, HTTP/1.1 over TLS, missing or
foreign client certificates and unknown peers — while gateway A's traffic keeps flowing."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import trio

from proxy.tls import TLSHandshakeError, open_tls_stream
from tests.integration.proxy.backends import EchoBackend
from tests.integration.proxy.certs import CA, Leaf, client_context, make_ca
from tests.integration.proxy.harness import FAST_RETRY, local_endpoint, route, serve_backend, table
from tests.integration.proxy.peers import Pair, gateway_pair, peer_endpoint

PKI = tuple[CA, Leaf, Leaf]


async def _drain(stream: trio.abc.ReceiveStream) -> bytes:
    data = b""
    with trio.fail_after(3):
        try:
            while chunk := await stream.receive_some(65536):
                data += chunk
        except (trio.BrokenResourceError, TLSHandshakeError):
            pass
    return data


async def _while_traffic_flows(pki: PKI, attack: Callable[[Pair], Awaitable[None]]) -> None:
    backend = EchoBackend()
    statuses: list[int] = []
    async with trio.open_nursery() as nursery:
        port = await serve_backend(nursery, backend)
        routes_b = table(
            route(
                "web.shop",
                (local_endpoint("w", port, cluster="b"),),
                allowed_sources=frozenset({"a"}),
            ),
            cluster="b",
        )
        routes_a = [route("web.shop", (peer_endpoint(0),), retry=FAST_RETRY)]
        async with gateway_pair(pki, routes_a, routes_b) as pair:
            done = trio.Event()

            async def good_client() -> None:
                async with httpx.AsyncClient(proxy=f"http://127.0.0.1:{pair.a.port}") as client:
                    for _ in range(2000):
                        statuses.append((await client.get("http://web.shop.global/")).status_code)
                        if done.is_set() and len(statuses) >= 5:
                            return
                        await trio.sleep(0.002)

            async with trio.open_nursery() as clients:
                clients.start_soon(good_client)
                with trio.fail_after(5):
                    while not statuses:
                        await trio.sleep(0.005)
                await attack(pair)
                done.set()
        nursery.cancel_scope.cancel()
    assert len(statuses) >= 5 and set(statuses) == {200}


async def test_plaintext_http_is_answered_400_and_closed(pki: PKI) -> None:
    async def attack(pair: Pair) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", pair.b.inbound_port)
        async with stream:
            await stream.send_all(b"GET / HTTP/1.1\r\nhost: web.shop.global\r\n\r\n")
            answer = await _drain(stream)
        assert answer.startswith(b"HTTP/1.1 400")
        assert b"mutual TLS" in answer

    await _while_traffic_flows(pki, attack)


async def test_http1_over_tls_is_closed_before_any_request(pki: PKI) -> None:
    ca, _, a_leaf = pki

    async def attack(pair: Pair) -> None:
        ctx = client_context(ca, a_leaf, alpn=("http/1.1",))
        stream = await open_tls_stream("127.0.0.1", pair.b.inbound_port, ctx)
        async with stream:
            assert stream.ssl_object.selected_alpn_protocol() is None
            answer = b"unsent"
            with contextlib.suppress(trio.BrokenResourceError):
                await stream.send_all(b"GET / HTTP/1.1\r\nhost: web.shop.global\r\n\r\n")
                answer = await _drain(stream)
        assert answer in (b"", b"unsent")
        assert all(r.source_cluster == "a" and r.path == "/" for r in pair.b.observer.requests)

    await _while_traffic_flows(pki, attack)


async def test_missing_foreign_and_unknown_client_certificates_are_refused(
    pki: PKI, tmp_path: Path
) -> None:
    ca, _, _ = pki
    foreign_ca = make_ca(tmp_path, "foreign-ca")
    foreign = foreign_ca.issue("gw-x", "spiffe://x.test/isthmus/gateway/a")
    stranger = ca.issue("gw-z", "spiffe://a.test/isthmus/gateway/z")

    async def attempt(port: int, ctx: ssl.SSLContext) -> bytes:
        try:
            stream = await open_tls_stream("127.0.0.1", port, ctx)
        except (TLSHandshakeError, trio.BrokenResourceError, OSError):
            return b""
        async with stream:
            try:
                await stream.send_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            except trio.BrokenResourceError:
                return b""
            return await _drain(stream)

    async def attack(pair: Pair) -> None:
        port = pair.b.inbound_port
        assert await attempt(port, client_context(ca, None)) == b""
        assert await attempt(port, client_context(ca, foreign)) == b""
        # Valid chain, but verify_peer does not know gateway z: closed before any request.
        assert await attempt(port, client_context(ca, stranger)) == b""
        assert pair.b.observer.requests == [] or all(
            r.source_cluster == "a" for r in pair.b.observer.requests
        )

    await _while_traffic_flows(pki, attack)
