"""HTTP/1.1 upstream: waiting for an answer, and never reusing a connection the backend
closed or spoke on while it was idle (raw TCP backends scripted per test)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import trio
import trio.testing

from proxy.upstream import UpstreamPools, UpstreamRequest
from tests.integration.upstream.conftest import local

HELLO = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"


def req(path: bytes = b"/") -> UpstreamRequest:
    return UpstreamRequest(b"GET", b"http", b"checkout.shop.global", path, [])


async def read_head(stream: trio.SocketStream) -> bytes:
    """One request head (body-less requests only); b"" when the client closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return b""
        data += chunk
    return data


async def serve(
    nursery: trio.Nursery, handler: Callable[[trio.SocketStream], Awaitable[None]]
) -> int:
    listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    port: int = listeners[0].socket.getsockname()[1]
    return port


async def fetch(pools: UpstreamPools, port: int, timeout_s: float | None) -> tuple[int, bytes]:
    response = await pools.request(local(port), req(), timeout_s=timeout_s)
    return response.status, b"".join([c async for c in response.body])


async def test_an_answer_that_is_not_there_right_after_sending_is_waited_for(
    pools: UpstreamPools, nursery: trio.Nursery
) -> None:
    """The first read after a request finds nothing (the backend holds its answer until
    every task is blocked): the exchange waits for the socket and reads the answer, on a
    new and on a kept-alive connection, with and without a response-head deadline."""
    connections = 0

    async def late(stream: trio.SocketStream) -> None:
        nonlocal connections
        connections += 1
        while await read_head(stream):
            await trio.testing.wait_all_tasks_blocked()  # the client waits for readability
            await stream.send_all(HELLO)

    port = await serve(nursery, late)
    with trio.fail_after(5):
        for timeout_s in (None, None, 2.0, 2.0):
            assert await fetch(pools, port, timeout_s) == (200, b"hello")
    assert connections == 1
