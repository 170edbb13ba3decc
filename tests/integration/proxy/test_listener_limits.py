"""Listener limits on the outbound listener: each bad client is rejected cleanly while a
well-behaved client on its own connection keeps succeeding."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

import h2.config
import h2.connection
import h2.errors
import h2.events
import httpx
import trio

from proxy.listeners import ListenerLimits
from proxy.protocol import H2_PREFACE
from tests.integration.proxy.backends import EchoBackend, serve_tcp_echo
from tests.integration.proxy.harness import (
    FAST_RETRY,
    Gateway,
    local_endpoint,
    route,
    running_gateway,
    serve_backend,
    table,
)

LIMITS = ListenerLimits(
    max_connections=8,
    max_header_list_size=8 * 1024,
    header_read_timeout_s=0.3,
    idle_timeout_s=5.0,
)


async def _good_client_loop(port: int, results: list[int], stop: trio.Event) -> None:
    """A keep-alive client that keeps asking until told to stop (bounded)."""
    async with httpx.AsyncClient(proxy=f"http://127.0.0.1:{port}") as client:
        for _ in range(2000):
            response = await client.get("http://web.shop.global/ping")
            results.append(response.status_code)
            if stop.is_set() and len(results) >= 5:
                return
            await trio.sleep(0.002)


async def _read_all(stream: trio.SocketStream, timeout_s: float = 3.0) -> bytes:
    data = b""
    with trio.fail_after(timeout_s):
        try:
            while chunk := await stream.receive_some(65536):
                data += chunk
        except trio.BrokenResourceError:
            pass
    return data


async def _with_gateway_and_good_client(
    attack: Callable[[Gateway], Awaitable[None]], limits: ListenerLimits = LIMITS
) -> list[int]:
    backend = EchoBackend()
    results: list[int] = []
    async with trio.open_nursery() as nursery:
        port = await serve_backend(nursery, backend)
        routing = table(route("web.shop", (local_endpoint("web-1", port),), retry=FAST_RETRY))
        async with running_gateway(routing, limits=limits) as gw:
            stop = trio.Event()
            async with trio.open_nursery() as clients:
                clients.start_soon(_good_client_loop, gw.port, results, stop)
                with trio.fail_after(5):
                    while not results:
                        await trio.sleep(0.005)
                await attack(gw)
                stop.set()
        nursery.cancel_scope.cancel()
    assert results and set(results) == {200}
    return results


async def test_connection_flood_beyond_the_limit_is_closed_at_once() -> None:
    async def attack(gw: Gateway) -> None:
        floods = [await trio.open_tcp_stream("127.0.0.1", gw.port) for _ in range(12)]
        try:
            # The good client holds one slot: 7 flood connections fit, the other 5 are closed.
            closed = 0

            async def probe(stream: trio.SocketStream) -> None:
                nonlocal closed
                with trio.move_on_after(1.5):
                    try:
                        if await stream.receive_some(10) == b"":
                            closed += 1
                    except trio.BrokenResourceError:
                        closed += 1

            async with trio.open_nursery() as probes:
                for stream in floods:
                    probes.start_soon(probe, stream)
            assert closed == 5
        finally:
            for stream in floods:
                await stream.aclose()

    await _with_gateway_and_good_client(attack, replace(LIMITS, header_read_timeout_s=5.0))


async def test_slowloris_gets_408_after_the_header_read_timeout() -> None:
    async def attack(gw: Gateway) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", gw.port)
        async with stream:
            start = trio.current_time()
            await stream.send_all(b"GET http://web.shop.global/ HTTP/1.1\r\nhost: web")
            for _ in range(3):
                await trio.sleep(0.05)
                await stream.send_all(b"x")
            answer = await _read_all(stream)
            elapsed = trio.current_time() - start
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert 0.25 < elapsed < 4.0

    await _with_gateway_and_good_client(attack)


async def test_oversized_header_block_gets_431_over_http1() -> None:
    async def attack(gw: Gateway) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", gw.port)
        async with stream:
            big = b"x-big: " + b"a" * 20_000 + b"\r\n"
            await stream.send_all(b"GET http://web.shop.global/ HTTP/1.1\r\nhost: w\r\n" + big)
            answer = await _read_all(stream)
        assert answer.startswith(b"HTTP/1.1 431"), answer[:80]

    await _with_gateway_and_good_client(attack)


async def _h2_exchange(port: int, frames: bytes) -> list[h2.events.Event]:
    """Send the preface plus ``frames`` raw; return the h2 events the server answered."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(client.data_to_send() + frames)
        answer = await _read_all(stream)
    return client.receive_data(answer)


async def test_oversized_h2_header_block_and_malformed_frames_get_goaway() -> None:
    async def attack(gw: Gateway) -> None:
        # Oversized header list: GOAWAY (ENHANCE_YOUR_CALM from h2's HPACK bomb guard).
        builder = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        builder.initiate_connection()
        builder.data_to_send()
        builder.send_headers(
            1,
            [
                (":method", "GET"),
                (":scheme", "http"),
                (":authority", "web.shop.global"),
                (":path", "/"),
                ("x-big", "a" * 20_000),
            ],
            end_stream=True,
        )
        events = await _h2_exchange(gw.port, builder.data_to_send())
        goaways = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
        assert goaways and goaways[0].error_code != 0
        assert not any(isinstance(e, h2.events.ResponseReceived) for e in events)
        # A DATA frame on stream 0 is a connection error: GOAWAY(PROTOCOL_ERROR).
        bad_data = b"\x00\x00\x03\x00\x00\x00\x00\x00\x00abc"
        events = await _h2_exchange(gw.port, bad_data)
        goaways = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
        assert goaways and goaways[0].error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
        # Garbage instead of a preface continuation is HTTP/1.1 nonsense: 400 then close.
        stream = await trio.open_tcp_stream("127.0.0.1", gw.port)
        async with stream:
            await stream.send_all(H2_PREFACE[:10] + b"garbage\r\n\r\n")
            answer = await _read_all(stream)
        assert answer.startswith(b"HTTP/1.1 400"), answer[:80]

    await _with_gateway_and_good_client(attack)


async def test_a_tunnel_outlives_the_request_timeout() -> None:
    async with trio.open_nursery() as nursery:
        echo_port = await nursery.start(serve_tcp_echo)
        routing = table(
            route(
                "db.shop",
                (local_endpoint("db", 1),),
                tcp_targets=(("127.0.0.1", echo_port),),
            )
        )
        limits = replace(LIMITS, request_timeout_s=0.2)
        async with running_gateway(routing, limits=limits) as gw:
            stream = await trio.open_tcp_stream("127.0.0.1", gw.port)
            async with stream:
                await stream.send_all(b"CONNECT db.shop.global:5432 HTTP/1.1\r\nhost: x\r\n\r\n")
                assert (await stream.receive_some(1024)).startswith(b"HTTP/1.1 200")
                await trio.sleep(0.4)
                await stream.send_all(b"still there?")
                with trio.fail_after(5):
                    assert await stream.receive_some(1024) == b"still there?"
        nursery.cancel_scope.cancel()


async def test_slowloris_on_a_reused_connection_gets_408_too() -> None:
    """After one good request, a trickled second head is bounded by the header-read timeout,
    not by the (long) idle timeout."""

    async def attack(gw: Gateway) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", gw.port)
        async with stream:
            await stream.send_all(b"GET http://web.shop.global/ HTTP/1.1\r\nhost: web\r\n\r\n")
            first = await stream.receive_some(65536)
            assert first.startswith(b"HTTP/1.1 200")
            start = trio.current_time()
            await stream.send_all(b"GET http://web.shop.global/ HTTP/1.1\r\nho")
            answer = await _read_all(stream)
            elapsed = trio.current_time() - start
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert elapsed < LIMITS.idle_timeout_s

    await _with_gateway_and_good_client(attack)


async def test_idle_h2c_and_http1_connections_are_closed_after_the_idle_timeout() -> None:
    async def attack(gw: Gateway) -> None:
        client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        client.initiate_connection()
        headers = [(":method", "GET"), (":scheme", "http"), (":authority", "web.shop.global")]
        client.send_headers(1, [*headers, (":path", "/")], end_stream=True)
        start = trio.current_time()
        h2_stream = await trio.open_tcp_stream("127.0.0.1", gw.port)
        async with h2_stream:
            await h2_stream.send_all(client.data_to_send())
            events = client.receive_data(await _read_all(h2_stream))
        h2_elapsed = trio.current_time() - start
        assert any(isinstance(e, h2.events.ResponseReceived) for e in events), events
        goaway = next(e for e in events if isinstance(e, h2.events.ConnectionTerminated))
        assert goaway.error_code == 0
        stream = await trio.open_tcp_stream("127.0.0.1", gw.port)
        async with stream:
            start = trio.current_time()
            await stream.send_all(b"GET http://web.shop.global/ HTTP/1.1\r\nhost: w\r\n\r\n")
            answer = await _read_all(stream)
            h1_elapsed = trio.current_time() - start
        assert answer.startswith(b"HTTP/1.1 200")
        assert 0.3 <= h2_elapsed < 2.5 and 0.3 <= h1_elapsed < 2.5

    await _with_gateway_and_good_client(attack, replace(LIMITS, idle_timeout_s=0.3))


async def test_a_frame_declared_larger_than_allowed_gets_goaway_before_it_is_buffered() -> None:
    async def attack(gw: Gateway) -> None:
        # A DATA frame header declaring 8 MiB, followed by 64 KiB of it: refused at once.
        header = (8 << 20).to_bytes(3, "big") + b"\x00\x00\x00\x00\x00\x01"
        events = await _h2_exchange(gw.port, header + b"\x00" * 65536)
        goaways = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
        assert goaways and goaways[0].error_code == h2.errors.ErrorCodes.FRAME_SIZE_ERROR

    await _with_gateway_and_good_client(attack)
