"""A local client -> gateway A (outbound) -> mTLS HTTP/2 -> gateway B (inbound) -> backend."""

from __future__ import annotations

import contextlib
import socket
import struct

import httpx
import trio

from tests.integration.proxy.backends import EchoBackend, serve_tcp_echo
from tests.integration.proxy.certs import CA, Leaf
from tests.integration.proxy.harness import (
    FAST_RETRY,
    eventually,
    local_endpoint,
    route,
    serve_backend,
    table,
)
from tests.integration.proxy.peers import ID_A, db_tunnel_routes, gateway_pair, peer_endpoint

PKI = tuple[CA, Leaf, Leaf]


async def test_http1_and_h2c_requests_cross_to_the_peer_backend(pki: PKI) -> None:
    backend = EchoBackend("b-web")
    async with trio.open_nursery() as nursery:
        port = await serve_backend(nursery, backend)
        routes_b = table(
            route(
                "web.shop",
                (local_endpoint("web-b", port, cluster="b"),),
                allowed_sources=frozenset({"a"}),
            ),
            cluster="b",
        )
        routes_a = [route("web.shop", (peer_endpoint(0),), retry=FAST_RETRY)]
        async with gateway_pair(pki, routes_a, routes_b) as pair:
            url = f"http://127.0.0.1:{pair.a.port}"
            async with httpx.AsyncClient(proxy=url) as client:
                r1 = await client.post(
                    "http://web.shop.global/x",
                    content=b"over the bridge",
                    headers={
                        "x-isthmus-source-identity": "spoofed",
                        "x-isthmus-source-cluster": "z",
                    },
                )
            async with httpx.AsyncClient(http1=False, http2=True) as client:
                r2 = await client.get(f"{url}/y", headers={"host": "web.shop.global"})
        nursery.cancel_scope.cancel()
    assert (r1.status_code, r1.content) == (200, b"over the bridge")
    assert (r2.status_code, r2.headers["x-backend"]) == (200, "b-web")
    seen = backend.seen_headers[0]
    assert seen["x-isthmus-source-cluster"] == "a"
    assert seen["x-isthmus-source-identity"] == ID_A
    assert pair.b.observer.requests[0].source_cluster == "a"
    assert pair.b.observer.requests[0].source_identity == ID_A
    assert pair.a.observer.requests[0].destination_cluster == "b"


async def test_peer_denies_sources_not_allowed_and_never_reforwards(pki: PKI) -> None:
    backend = EchoBackend()
    async with trio.open_nursery() as nursery:
        port = await serve_backend(nursery, backend)
        routes_b = table(
            route("private.shop", (local_endpoint("p", port, cluster="b"),)),
            # B's own route for loop.shop points at another peer only: inbound must not use it.
            route(
                "loop.shop",
                (peer_endpoint(1, key="gw-c"),),
                allowed_sources=frozenset({"*"}),
            ),
            # What the federation sends B for a service B does not run (yet): no endpoint
            # here and no allowed source. A caller whose snapshot already routes it here
            # must get a 503 it retries elsewhere, not a final 403.
            route("moved.shop", (peer_endpoint(1, key="gw-c"),)),
            cluster="b",
        )
        routes_a = [
            route("private.shop", (peer_endpoint(0),), retry=FAST_RETRY),
            route("loop.shop", (peer_endpoint(0),), retry=FAST_RETRY),
            route("moved.shop", (peer_endpoint(0),), retry=FAST_RETRY),
        ]
        async with (
            gateway_pair(pki, routes_a, routes_b) as pair,
            httpx.AsyncClient(proxy=f"http://127.0.0.1:{pair.a.port}") as client,
        ):
            denied = await client.get("http://private.shop.global/")
            loop = await client.get("http://loop.shop.global/")
            moved = await client.get("http://moved.shop.global/")
        nursery.cancel_scope.cancel()
    assert denied.status_code == 403
    assert denied.headers["x-isthmus-reason"] == "source_not_allowed"
    assert backend.hits == 0
    assert loop.status_code == 503
    assert next(r.reason for r in pair.b.observer.requests if r.service == "loop.shop") == (
        "no_endpoints"
    )
    assert moved.status_code == 503
    # B answered 503 with a reason (a caller retries that at another cluster), not 403
    assert [r.reason for r in pair.b.observer.requests if r.service == "moved.shop"] == [
        "no_endpoints"
    ]


async def test_connect_tunnel_echo_locally_and_across_the_peer(pki: PKI) -> None:
    async with trio.open_nursery() as nursery:
        echo_port = await nursery.start(serve_tcp_echo)
        routes_b = table(
            route(
                "db.shop",
                (local_endpoint("db-b", 1, cluster="b"),),
                tcp_targets=(("127.0.0.1", echo_port),),
                allowed_sources=frozenset({"a"}),
            ),
            cluster="b",
        )
        routes_a = [
            route("db.shop", (peer_endpoint(0),), retry=FAST_RETRY),
            route(
                "cache.shop",
                (local_endpoint("cache-a", 1),),
                tcp_targets=(("127.0.0.1", echo_port),),
            ),
        ]
        payload = bytes(range(256)) * 4096  # 1 MiB
        async with gateway_pair(pki, routes_a, routes_b) as pair:
            for service in ("cache.shop", "db.shop"):
                connect = f"CONNECT {service}.global:5432 HTTP/1.1\r\nhost: x\r\n\r\n"
                stream = await trio.open_tcp_stream("127.0.0.1", pair.a.port)
                async with stream:
                    await stream.send_all(connect.encode())
                    head = await stream.receive_some(4096)
                    assert head.startswith(b"HTTP/1.1 200"), head
                    received = b""

                    async def send(s: trio.SocketStream = stream, p: bytes = payload) -> None:
                        await s.send_all(p)
                        await s.send_eof()

                    with trio.fail_after(10):
                        async with trio.open_nursery() as inner:
                            inner.start_soon(send)
                            while data := await stream.receive_some(65536):
                                received += data
                    assert received == payload
            await eventually(lambda: len(pair.a.observer.tunnels) == 2)
            await eventually(lambda: len(pair.b.observer.tunnels) == 1)
        nursery.cancel_scope.cancel()
    tunnels = pair.a.observer.tunnels
    assert [t.service for t in tunnels] == ["cache.shop", "db.shop"]
    assert all(t.bytes_up == t.bytes_down == len(payload) for t in tunnels)
    assert pair.b.observer.tunnels[0].source_cluster == "a"
    assert pair.b.observer.tunnels[0].source_identity == ID_A


async def test_a_tunnel_the_peer_refuses_is_answered_with_the_peers_status(pki: PKI) -> None:
    async with trio.open_nursery() as nursery:
        echo_port = await nursery.start(serve_tcp_echo)
        routes_b = table(
            route(
                "vault.shop",
                (local_endpoint("v", 1, cluster="b"),),
                tcp_targets=(("127.0.0.1", echo_port),),
            ),  # no allowed_sources: default deny
            cluster="b",
        )
        routes_a = [route("vault.shop", (peer_endpoint(0),), retry=FAST_RETRY)]
        async with gateway_pair(pki, routes_a, routes_b) as pair:
            stream = await trio.open_tcp_stream("127.0.0.1", pair.a.port)
            async with stream:
                await stream.send_all(b"CONNECT vault.shop.global:8200 HTTP/1.1\r\nhost: x\r\n\r\n")
                with trio.fail_after(5):
                    head = await stream.receive_some(4096)
        nursery.cancel_scope.cancel()
    assert head.startswith(b"HTTP/1.1 403"), head
    assert b"x-isthmus-reason: peer_refused" in head.lower()
    assert pair.b.observer.requests[0].status == 403


async def test_a_broken_tunnel_side_ends_the_tunnel_cleanly(pki: PKI) -> None:
    """The TCP target resets mid-tunnel: the client sees its connection end, the gateway
    records the tunnel as broken and keeps serving."""
    got_first = trio.Event()

    async def rude_target(stream: trio.SocketStream) -> None:
        await stream.receive_some(1024)
        got_first.set()
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        stream.socket.close()  # RST

    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        target_port = listeners[0].socket.getsockname()[1]
        nursery.start_soon(trio.serve_listeners, rude_target, listeners)
        routes_a = [
            route("db.shop", (local_endpoint("db", 1),), tcp_targets=(("127.0.0.1", target_port),))
        ]
        async with gateway_pair(pki, routes_a, table(cluster="b")) as pair:
            stream = await trio.open_tcp_stream("127.0.0.1", pair.a.port)
            async with stream:
                await stream.send_all(b"CONNECT db.shop.global:1 HTTP/1.1\r\nhost: x\r\n\r\n")
                assert (await stream.receive_some(1024)).startswith(b"HTTP/1.1 200")
                await stream.send_all(b"hello")
                with trio.fail_after(5):
                    await got_first.wait()
                    rest = b""
                    with contextlib.suppress(trio.BrokenResourceError):
                        while data := await stream.receive_some(1024):
                            rest += data
            await eventually(lambda: len(pair.a.observer.tunnels) == 1)
        nursery.cancel_scope.cancel()
    assert rest == b""
    assert pair.a.observer.tunnels[0].reason == "tunnel_broken"


async def test_a_tunnel_to_a_stalled_target_stops_the_sender_then_delivers_everything(
    pki: PKI,
) -> None:
    """Backpressure end to end across the peer (big HTTP/2 frames, batched credit): while the
    TCP target reads nothing the client can push only a bounded amount into the tunnel; once
    the target reads, every byte arrives, in order."""
    total = 64 << 20
    chunk = bytes(range(256)) * 1024  # 256 KiB; the byte at offset i is i % 256
    reading = trio.Event()
    got = {"bytes": 0, "misplaced": 0}

    async def slow_target(stream: trio.SocketStream) -> None:
        await reading.wait()
        while data := await stream.receive_some(1 << 20):
            at = got["bytes"]
            if data[0] != at % 256 or data[-1] != (at + len(data) - 1) % 256:
                got["misplaced"] += 1
            got["bytes"] = at + len(data)

    sent = 0
    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        listeners[0].socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        target_port = listeners[0].socket.getsockname()[1]
        nursery.start_soon(trio.serve_listeners, slow_target, listeners)
        routes_a, routes_b = db_tunnel_routes(target_port)
        async with gateway_pair(pki, routes_a, routes_b) as pair:
            stream = await trio.open_tcp_stream("127.0.0.1", pair.a.port)
            async with stream:
                await stream.send_all(b"CONNECT db.shop.global:5432 HTTP/1.1\r\nhost: x\r\n\r\n")
                assert (await stream.receive_some(4096)).startswith(b"HTTP/1.1 200")

                async def send() -> None:
                    nonlocal sent
                    while sent < total:
                        await stream.send_all(chunk)
                        sent += len(chunk)
                    await stream.send_eof()

                async with trio.open_nursery() as inner:
                    inner.start_soon(send)
                    stalled_at, still = -1, 0
                    with trio.fail_after(15):
                        while still < 5:  # no progress in 5 polls of 0.1 s: the sender waits
                            await trio.sleep(0.1)
                            still = still + 1 if sent == stalled_at else 0
                            stalled_at = sent
                    reading.set()
                    with trio.fail_after(30):
                        while got["bytes"] < total:
                            await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    assert stalled_at < total // 2, f"{stalled_at >> 20} MiB went in before the sender stalled"
    assert got == {"bytes": total, "misplaced": 0}
