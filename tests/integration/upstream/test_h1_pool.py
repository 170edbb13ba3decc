"""HTTP/1.1 keep-alive pools to local backends, and plain TCP tunnels."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

import pytest
import trio
import trio.testing

from proxy.errors import ConnectFailure, UpstreamTimeout
from proxy.retry import FailureKind
from proxy.upstream import PoolSettings, UpstreamPools, UpstreamRequest, open_upstream_pools
from tests.integration.upstream.conftest import Pki, local
from tests.integration.upstream.servers import H1Server, echo_tcp


def req(path: bytes, body: AsyncIterator[bytes] | None = None) -> UpstreamRequest:
    method = b"GET" if body is None else b"POST"
    return UpstreamRequest(method, b"http", b"checkout.shop.global", path, [], body)


async def fetch(pools: UpstreamPools, port: int, path: bytes = b"/hello") -> tuple[int, bytes]:
    response = await pools.request(local(port), req(path))
    return response.status, b"".join([c async for c in response.body])


async def test_sequential_requests_reuse_one_kept_alive_connection(
    pools: UpstreamPools, h1_server: H1Server
) -> None:
    for _ in range(20):
        assert await fetch(pools, h1_server.port) == (200, b"hello")
    assert (h1_server.connections, h1_server.requests) == (1, 20)


async def test_concurrent_requests_open_at_most_one_connection_each_then_reuse(
    pools: UpstreamPools, h1_server: H1Server
) -> None:
    results: list[tuple[int, bytes]] = []

    async def one() -> None:
        results.append(await fetch(pools, h1_server.port))

    for _ in range(3):
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(one)
    assert results == [(200, b"hello")] * 15
    assert h1_server.connections == 5


async def test_connection_close_and_unread_bodies_discard_the_connection(
    pools: UpstreamPools, h1_server: H1Server
) -> None:
    assert await fetch(pools, h1_server.port, b"/close") == (200, b"hello")
    assert await fetch(pools, h1_server.port) == (200, b"hello")
    assert h1_server.connections == 2
    response = await pools.request(local(h1_server.port), req(b"/hello"))
    await response.aclose()  # body not read: the connection cannot be reused
    assert await fetch(pools, h1_server.port) == (200, b"hello")
    assert h1_server.connections == 3


async def test_streamed_chunked_upload_is_echoed(pools: UpstreamPools, h1_server: H1Server) -> None:
    parts = [b"a" * 100_000, b"b" * 7, b"c" * 300_000]

    async def body() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    response = await pools.request(local(h1_server.port), req(b"/echo", body()))
    assert response.status == 200
    assert b"".join([c async for c in response.body]) == b"".join(parts)


async def test_backend_closing_an_idle_connection_is_retried_on_a_fresh_one(
    pools: UpstreamPools, h1_server: H1Server
) -> None:
    h1_server.drop_idle = True
    for _ in range(3):
        assert await fetch(pools, h1_server.port) == (200, b"hello")
        await trio.sleep(0.1)  # the backend drops the kept-alive connection meanwhile
    assert h1_server.connections == 3


async def test_no_head_within_timeout_on_a_new_or_kept_alive_connection(
    pools: UpstreamPools, h1_server: H1Server
) -> None:
    endpoint = local(h1_server.port)

    async def hang() -> None:
        start = trio.current_time()
        with trio.fail_after(2), pytest.raises(UpstreamTimeout) as info:
            await pools.request(endpoint, req(b"/hang"), timeout_s=0.2)
        assert info.value.failure is FailureKind.PER_TRY_TIMEOUT
        assert 0.2 <= trio.current_time() - start < 1.0

    async def hello() -> None:
        response = await pools.request(endpoint, req(b"/hello"), timeout_s=2)
        assert (response.status, b"".join([c async for c in response.body])) == (200, b"hello")

    await hang()  # on a new connection
    await hello()
    await hang()  # on the kept-alive connection
    await hello()
    await hello()
    assert h1_server.connections == 3  # each timed-out connection was discarded
    assert h1_server.requests == 5


async def test_idle_connections_are_closed_after_the_idle_timeout(
    pki: Pki, h1_server: H1Server
) -> None:
    settings = PoolSettings(idle_timeout_s=0.1, reap_interval_s=0.05)
    async with open_upstream_pools(
        client_context_for=lambda _: pki.client_context,
        verify_peer=pki.verify_peer,
        settings=settings,
    ) as pools:
        assert await fetch(pools, h1_server.port) == (200, b"hello")
        assert pools.connection_count(local(h1_server.port)) == 1
        with trio.fail_after(2):
            while pools.connection_count(local(h1_server.port)):
                await trio.sleep(0.02)


async def test_refused_backend_is_a_connect_failure(pools: UpstreamPools) -> None:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()
    with pytest.raises(ConnectFailure, match="backend"):
        await fetch(pools, port)


async def test_local_tunnel_is_plain_tcp(pools: UpstreamPools, nursery: trio.Nursery) -> None:
    listeners = await nursery.start(partial(trio.serve_tcp, echo_tcp, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    tunnel = await pools.open_tunnel(local(port, "http1"), "db:5432")
    await tunnel.send_all(b"ping")
    assert await tunnel.receive_some(10) == b"ping"
    await tunnel.aclose()


async def test_at_max_total_requests_wait_for_a_release_then_reuse_it(
    pki: Pki, h1_server: H1Server
) -> None:
    settings = PoolSettings(http1_max_total=1, acquire_timeout_s=0.3)
    async with open_upstream_pools(
        client_context_for=lambda _: pki.client_context,
        verify_peer=pki.verify_peer,
        settings=settings,
    ) as pools:
        held = await pools.request(local(h1_server.port), req(b"/hello"))
        with pytest.raises(ConnectFailure, match="busy"):
            await fetch(pools, h1_server.port)  # the only connection is in use
        async with trio.open_nursery() as nursery:
            results: list[tuple[int, bytes]] = []

            async def waiter() -> None:
                results.append(await fetch(pools, h1_server.port))

            nursery.start_soon(waiter)
            await trio.sleep(0.05)
            assert results == []
            assert b"".join([c async for c in held.body]) == b"hello"  # releases it
        assert results == [(200, b"hello")]
        assert h1_server.connections == 1


async def test_idle_connections_beyond_max_idle_close_and_the_rest_are_reused(
    pki: Pki, h1_server: H1Server
) -> None:
    settings = PoolSettings(http1_max_idle=2)
    async with open_upstream_pools(
        client_context_for=lambda _: pki.client_context,
        verify_peer=pki.verify_peer,
        settings=settings,
    ) as pools:
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(fetch, pools, h1_server.port)
        assert pools.connection_count(local(h1_server.port)) == 2
        for _ in range(4):
            assert await fetch(pools, h1_server.port) == (200, b"hello")
        assert (h1_server.connections, h1_server.requests) == (5, 9)


RAW_ANSWERS = {
    b"/chunked": b"HTTP/1.1 100 Continue\r\n\r\n"
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    b"3\r\nhel\r\n2;x=y\r\nlo\r\n0\r\nx-trailer: 1\r\n\r\n",
    b"/close": b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nhello",
}


async def _raw_backend(stream: trio.SocketStream) -> None:
    """Answers each request head with RAW_ANSWERS[path]; closes after /close."""
    buffer = b""
    while True:
        data = await stream.receive_some(4096)
        if not data:
            return
        buffer += data
        while b"\r\n\r\n" in buffer:
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            path = head.split(b" ")[1]
            await stream.send_all(RAW_ANSWERS[path])
            if path == b"/close":
                await stream.aclose()
                return


async def test_chunked_informational_and_read_until_close_responses(
    pools: UpstreamPools, nursery: trio.Nursery
) -> None:
    listeners = await nursery.start(partial(trio.serve_tcp, _raw_backend, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    for _ in range(2):  # the chunked exchange leaves the connection reusable
        assert await fetch(pools, port, b"/chunked") == (200, b"hello")
    assert pools.connection_count(local(port)) == 1
    assert await fetch(pools, port, b"/close") == (200, b"hello")
    assert pools.connection_count(local(port)) == 0  # HTTP/1.0 answer: not kept


class _Upload:
    """A request body of up to ``limit`` bytes in 64 KiB pieces; counts what was pulled."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pulled = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        piece = b"u" * 65536
        while self.pulled < self.limit:
            self.pulled += len(piece)
            yield piece
            await trio.sleep(0)


async def _early_413(stream: trio.SocketStream) -> None:
    """Reads one request head, answers 413 at once, then never reads the (large) body."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        buffer += await stream.receive_some(4096)
    await stream.send_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 3\r\n\r\nbig")
    await trio.sleep_forever()


async def test_an_early_response_is_read_while_the_body_is_still_uploading(
    pools: UpstreamPools, nursery: trio.Nursery
) -> None:
    listeners = await nursery.start(partial(trio.serve_tcp, _early_413, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    upload = _Upload(1 << 30)  # far more than the socket buffers hold: the upload stalls
    with trio.fail_after(5):  # the per-try timeout below is 30 s
        response = await pools.request(local(port), req(b"/upload", upload.chunks()), timeout_s=30)
        assert response.status == 413
        assert b"".join([c async for c in response.body]) == b"big"
    pulled = upload.pulled
    await trio.testing.wait_all_tasks_blocked()  # an upload still running would pull on
    assert upload.pulled == pulled < 64 << 20  # the upload stopped with the response
    # the body was not fully sent: that connection is closed, not reused
    assert pools.connection_count(local(port)) == 0


async def test_a_retired_pool_is_not_reused_for_the_same_endpoint_object(
    pools: UpstreamPools, h1_server: H1Server
) -> None:
    endpoint = local(h1_server.port)
    for _ in range(2):  # the second request takes the remembered pool
        response = await pools.request(endpoint, req(b"/hello"))
        assert b"".join([c async for c in response.body]) == b"hello"
    assert (h1_server.connections, pools.connection_count(endpoint)) == (1, 1)
    pools.retain([])  # the table no longer has it: its pool retires, connections close
    assert pools.connection_count(endpoint) == 0
    response = await pools.request(endpoint, req(b"/hello"))  # back in a later table
    assert b"".join([c async for c in response.body]) == b"hello"
    assert (h1_server.connections, pools.connection_count(endpoint)) == (2, 1)
    await pools.aclose()
    with pytest.raises(ConnectFailure, match="closed"):
        await pools.request(endpoint, req(b"/hello"))
