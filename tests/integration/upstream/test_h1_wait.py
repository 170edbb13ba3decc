"""HTTP/1.1 upstream: waiting for an answer, and never reusing a connection the backend
closed or spoke on while it was idle (raw TCP backends scripted per test)."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from functools import partial

import trio
import trio.testing

from proxy.upstream import UpstreamPools, UpstreamRequest
from proxy.upstream.h1idle import IdleProbe
from tests.integration.upstream.conftest import local

HELLO = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"


def req(path: bytes = b"/") -> UpstreamRequest:
    return UpstreamRequest(b"GET", b"http", b"checkout.shop.global", path, [])


async def read_head(stream: trio.SocketStream) -> bytes:
    """One request head (body-less requests only); b"" when the client closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = await stream.receive_some(65536)
        except trio.BrokenResourceError:  # reset: the client closed with bytes unread
            return b""
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


async def test_a_kept_alive_connection_the_backend_spoke_on_while_idle_is_not_reused(
    pools: UpstreamPools, nursery: trio.Nursery
) -> None:
    """An unsolicited ``408`` on an idle connection (a backend's idle timeout) must never be
    taken for the next request's answer: that request goes on a fresh connection."""
    connections = 0
    spoke = trio.Event()
    speak = trio.Event()

    async def times_out(stream: trio.SocketStream) -> None:
        nonlocal connections
        connections += 1
        await read_head(stream)
        await stream.send_all(HELLO)
        if connections == 1:
            await speak.wait()
            await stream.send_all(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n")
            spoke.set()
        await read_head(stream)  # until the client closes

    with trio.fail_after(5):
        for timeout_s in (None, 2.0):
            connections = 0
            spoke, speak = trio.Event(), trio.Event()
            port = await serve(nursery, times_out)
            assert await fetch(pools, port, timeout_s) == (200, b"hello")
            speak.set()
            await spoke.wait()
            assert await fetch(pools, port, timeout_s) == (200, b"hello")
            assert connections == 2


async def test_idle_probe_answers_once_per_batch_for_connections_idle_before_it() -> None:
    """One poll per scheduler batch: its answer stands for the batch's connections that were
    parked before it; one parked later in the batch, or an answer that could not list every
    ready socket, says "poll it alone" (``None``)."""
    probe = IdleProbe()
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        fds = [ours.fileno() for ours, _ in pairs]
        assert all(probe.add(fd) for fd in fds)
        await trio.lowlevel.checkpoint()
        before = probe.batch - 1
        assert [probe.readable(fd, before, 3) for fd in fds] == [False] * 3
        pairs[0][1].send(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
        pairs[1][1].close()
        assert probe.readable(fds[0], before, 3) is False  # this batch's answer stands
        assert probe.readable(fds[0], probe.batch, 3) is None  # parked after it: poll alone
        await trio.lowlevel.checkpoint()  # the next batch polls again
        assert [probe.readable(fd, before, 3) for fd in fds] == [True, True, False]
        await trio.lowlevel.checkpoint()
        assert probe.readable(fds[2], before, 1) is None  # 2 ready, room for 2: incomplete
        probe.close()  # with its pool: every connection is polled alone from then on
        await trio.lowlevel.checkpoint()
        assert probe.readable(fds[2], before, 3) is None
        assert not probe.add(fds[2])
    finally:
        probe.close()
        for ours, theirs in pairs:
            ours.close()
            theirs.close()


async def test_a_head_larger_than_the_send_buffer_is_sent_whole(
    pools: UpstreamPools, nursery: trio.Nursery
) -> None:
    """A body-less request's head the kernel does not take at once (8 MiB of header): the
    rest goes through the stream, waiting for the backend to read; the answer follows."""
    big = b"a" * (8 << 20)
    received: list[int] = []

    async def reader(stream: trio.SocketStream) -> None:
        data = bytearray()
        while not data.endswith(b"\r\n\r\n"):
            chunk = await stream.receive_some(1 << 20)
            if not chunk:
                return
            data += chunk
        received.append(len(data))
        await stream.send_all(HELLO)

    port = await serve(nursery, reader)
    request = UpstreamRequest(b"GET", b"http", b"checkout.shop.global", b"/", [(b"x-big", big)])
    with trio.fail_after(10):
        response = await pools.request(local(port), request, timeout_s=5.0)
        assert (response.status, b"".join([c async for c in response.body])) == (200, b"hello")
    assert received and received[0] > len(big)
