"""HTTP/2 end to end through the proxy: trailers cross it, and a body that ends upstream
with its last DATA frame ends downstream the same way (no extra empty frame)."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import trio

from proxy.listeners import Exchange
from proxy.upstream import UpstreamPools
from tests.integration.proxy.harness import (
    FAST_RETRY,
    local_endpoint,
    route,
    running_gateway,
    serve_backend,
    table,
)

Frames = list[h2.events.Event]


class TrailerBackend:
    """``/trailers`` answers ``ok`` then ``grpc-status: 0``; anything else just ``ok``."""

    async def handle(self, exchange: Exchange) -> None:
        await exchange.start_response(200, [(b"content-type", b"text/plain")])
        if exchange.path == b"/trailers":
            await exchange.send_data(b"ok")
            await exchange.end_response([(b"grpc-status", b"0")])
        else:
            await exchange.send_data(b"ok", end_stream=True)


async def _get(port: int, path: bytes) -> Frames:
    """Events of one h2c GET, until its stream ends (bounded in time)."""
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    conn.initiate_connection()
    conn.send_headers(
        1,
        [
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":authority", b"api.shop.global"),
            (b":path", path),
        ],
        end_stream=True,
    )
    events: Frames = []
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(conn.data_to_send())
            while not any(isinstance(e, h2.events.StreamEnded) for e in events):
                data = await stream.receive_some(65536)
                assert data, "the proxy closed the connection"
                events += conn.receive_data(data)
                await stream.send_all(conn.data_to_send())
    return events


async def test_trailers_cross_and_a_finished_body_ends_with_its_last_data_frame() -> None:
    async with trio.open_nursery() as nursery:
        port = await serve_backend(nursery, TrailerBackend())
        routing = table(route("api.shop", (local_endpoint("b", port, "h2c"),), retry=FAST_RETRY))
        async with running_gateway(routing) as gw:
            plain = await _get(gw.port, b"/")
            with_trailers = await _get(gw.port, b"/trailers")
        nursery.cancel_scope.cancel()
    data = [e for e in plain if isinstance(e, h2.events.DataReceived)]
    assert [e.data for e in data] == [b"ok"]  # one DATA frame...
    assert data[0].stream_ended is not None  # ...carrying END_STREAM (no empty frame after)
    trailers = [e for e in with_trailers if isinstance(e, h2.events.TrailersReceived)]
    assert [list(t.headers) for t in trailers] == [[(b"grpc-status", b"0")]]
    body = b"".join(e.data for e in with_trailers if isinstance(e, h2.events.DataReceived))
    assert body == b"ok"


class LengthBackend:
    """Answers ``ok`` with a ``content-length``."""

    async def handle(self, exchange: Exchange) -> None:
        await exchange.start_response(200, [(b"content-length", b"2")])
        await exchange.send_data(b"ok", end_stream=True)


async def test_a_length_framed_http1_body_ends_with_its_last_data_frame() -> None:
    async with trio.open_nursery() as nursery:
        port = await serve_backend(nursery, LengthBackend())
        routing = table(route("api.shop", (local_endpoint("b", port, "http1"),)))
        async with running_gateway(routing) as gw:
            events = [await _get(gw.port, b"/") for _ in range(3)]
            pools = gw.engine.upstream
            assert isinstance(pools, UpstreamPools)
            reused = pools.connection_count(local_endpoint("b", port, "http1"))
        nursery.cancel_scope.cancel()
    for each in events:
        data = [e for e in each if isinstance(e, h2.events.DataReceived)]
        assert [e.data for e in data] == [b"ok"]
        assert data[0].stream_ended is not None  # END_STREAM with the data, no empty frame
    assert reused == 1  # the backend connection went back to the pool each time


async def _h1_get(port: int, path: bytes, extra: bytes = b"") -> bytes:
    """The raw bytes of one HTTP/1.1 response (``connection: close``, read to EOF)."""
    request = b"GET %s HTTP/1.1\r\nhost: api.shop.global\r\n%sconnection: close\r\n\r\n"
    received = b""
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(request % (path, extra))
            while data := await stream.receive_some(65536):
                received += data
    return received


async def test_trailers_reach_an_http1_client_that_accepts_them() -> None:
    async with trio.open_nursery() as nursery:
        port = await serve_backend(nursery, TrailerBackend())
        routing = table(route("api.shop", (local_endpoint("b", port, "h2c"),), retry=FAST_RETRY))
        async with running_gateway(routing) as gw:
            accepted = await _h1_get(gw.port, b"/trailers", b"te: trailers\r\n")
            declined = await _h1_get(gw.port, b"/trailers")
        nursery.cancel_scope.cancel()
    head, _, body = accepted.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"transfer-encoding: chunked" in head.lower()
    assert body == b"2\r\nok\r\n0\r\ngrpc-status: 0\r\n\r\n"
    head, _, body = declined.partition(b"\r\n\r\n")
    assert body == b"2\r\nok\r\n0\r\n\r\n"  # no te: trailers -> dropped
