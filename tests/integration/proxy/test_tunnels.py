"""CONNECT tunnels: the idle timeout (no byte in either direction for
``tunnel_idle_timeout_s`` closes a tunnel; traffic either way keeps it open) and bytes a client
pipelines behind the CONNECT head."""

from __future__ import annotations

import trio
import trio.testing

from proxy.listeners import ListenerLimits
from proxy.tunnel import PumpCounts, TunnelIdleTimeout, pump
from tests.integration.proxy.backends import serve_tcp_echo
from tests.integration.proxy.certs import CA, Leaf
from tests.integration.proxy.harness import eventually
from tests.integration.proxy.peers import db_tunnel_routes, gateway_pair

PKI = tuple[CA, Leaf, Leaf]
IDLE_S = 60.0


async def _pump_with_idle(
    client: trio.abc.HalfCloseableStream, upstream: trio.abc.HalfCloseableStream
) -> float:
    """Run the pump until the idle timeout ends it; the (mock) time that took."""
    start = trio.current_time()
    try:
        with trio.fail_after(10 * IDLE_S):  # bounded even if the timeout never fires
            await pump(client, upstream, PumpCounts(), idle_timeout_s=IDLE_S)
    except TunnelIdleTimeout:
        return trio.current_time() - start
    raise AssertionError("the pump ended without an idle timeout")


def test_a_silent_tunnel_closes_after_the_idle_timeout() -> None:
    async def main() -> None:
        client, client_far = trio.testing.memory_stream_pair()
        upstream, upstream_far = trio.testing.memory_stream_pair()
        assert await _pump_with_idle(client, upstream) == IDLE_S
        del client_far, upstream_far

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_bytes_in_either_direction_keep_a_tunnel_open() -> None:
    async def main() -> None:
        client, client_far = trio.testing.memory_stream_pair()
        upstream, upstream_far = trio.testing.memory_stream_pair()
        moved: list[float] = []

        async def trickle() -> None:
            # one byte every 0.9 x the timeout, alternating directions, five times
            for i in range(5):
                await trio.sleep(IDLE_S * 0.9)
                sender, receiver = (client_far, upstream_far)[:: 1 if i % 2 == 0 else -1]
                await sender.send_all(b"x")
                assert await receiver.receive_some(1) == b"x"
                moved.append(trio.current_time())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(trickle)
            lasted = await _pump_with_idle(client, upstream)
        assert len(moved) == 5
        assert lasted == moved[-1] + IDLE_S  # closed exactly one timeout after the last byte

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_tunnel_whose_sides_finish_ends_without_waiting_for_the_timeout() -> None:
    async def main() -> None:
        client, client_far = trio.testing.memory_stream_pair()
        upstream, upstream_far = trio.testing.memory_stream_pair()
        async with trio.open_nursery() as nursery:

            async def finish() -> None:
                await client_far.send_all(b"hello")
                await client_far.send_eof()
                assert await upstream_far.receive_some(5) == b"hello"
                await upstream_far.send_eof()

            nursery.start_soon(finish)
            start = trio.current_time()
            counts = await pump(client, upstream, idle_timeout_s=IDLE_S)
        assert counts.up == 5
        assert trio.current_time() - start < IDLE_S

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


async def test_idle_tunnels_through_both_gateways_are_closed_and_recorded(pki: PKI) -> None:
    """HTTP/1.1 CONNECT on A, HTTP/2 CONNECT between the gateways, TCP to the target: after
    a silence the client's connection is closed and both gateways record why."""
    short = ListenerLimits(tunnel_idle_timeout_s=0.3)
    async with trio.open_nursery() as nursery:
        echo_port = await nursery.start(serve_tcp_echo)
        routes_a, routes_b = db_tunnel_routes(echo_port)
        long = ListenerLimits(tunnel_idle_timeout_s=30.0)
        async with gateway_pair(pki, routes_a, routes_b, limits_a=short, limits_b=long) as pair:
            stream = await trio.open_tcp_stream("127.0.0.1", pair.a.port)
            async with stream:
                await stream.send_all(b"CONNECT db.shop.global:5432 HTTP/1.1\r\nhost: x\r\n\r\n")
                head = await stream.receive_some(4096)
                assert head.startswith(b"HTTP/1.1 200"), head
                await stream.send_all(b"ping")
                assert await stream.receive_some(16) == b"ping"
                with trio.fail_after(5):
                    assert await stream.receive_some(16) == b""  # A closed the connection
            await eventually(lambda: len(pair.a.observer.tunnels) == 1)
            # B's own timeout is long: its tunnel ended because A reset the HTTP/2 stream.
            await eventually(lambda: len(pair.b.observer.tunnels) == 1)
        nursery.cancel_scope.cancel()
    (record_a,) = pair.a.observer.tunnels
    assert (record_a.reason, record_a.bytes_up, record_a.bytes_down) == (
        "tunnel_idle_timeout",
        4,
        4,
    )
    assert 0.3 <= record_a.duration_s < 5
    assert pair.b.observer.tunnels[0].reason != "tunnel_idle_timeout"


async def test_bytes_sent_with_the_connect_head_go_through_first(pki: PKI) -> None:
    """A client that pipelines its first bytes behind the CONNECT head (no wait for the 200)
    gets them through the tunnel before anything it sends later."""
    async with trio.open_nursery() as nursery:
        echo_port = await nursery.start(serve_tcp_echo)
        routes_a, routes_b = db_tunnel_routes(echo_port)
        async with gateway_pair(pki, routes_a, routes_b) as pair:
            stream = await trio.open_tcp_stream("127.0.0.1", pair.a.port)
            async with stream:
                head = b"CONNECT db.shop.global:5432 HTTP/1.1\r\nhost: x\r\n\r\n"
                await stream.send_all(head + b"early|")
                received = b""
                with trio.fail_after(10):
                    while b"early|later" not in received:
                        data = await stream.receive_some(4096)
                        assert data, received
                        received += data
                        if received.endswith(b"early|"):
                            await stream.send_all(b"later")
        nursery.cancel_scope.cancel()
    assert received.startswith(b"HTTP/1.1 200"), received
    assert received.endswith(b"\r\n\r\nearly|later"), received
