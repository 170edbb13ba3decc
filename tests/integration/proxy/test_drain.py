"""Graceful drain: new connections are refused, in-flight requests finish, then close."""

from __future__ import annotations

import h2.config
import h2.connection
import pytest
import trio
from hpack import Decoder
from hyperframe.frame import Frame, GoAwayFrame, HeadersFrame

from proxy.listeners import Exchange
from tests.integration.proxy.backends import EchoBackend
from tests.integration.proxy.harness import (
    FAST_RETRY,
    eventually,
    local_endpoint,
    route,
    running_gateway,
    serve_backend,
    table,
)


class HeldBackend(EchoBackend):
    """Echo, but ``/slow`` waits for ``release``."""

    def __init__(self) -> None:
        super().__init__("held")
        self.release = trio.Event()
        self.waiting = 0

    async def handle(self, exchange: Exchange) -> None:
        if exchange.path == b"/slow":
            self.waiting += 1
            await self.release.wait()
        await super().handle(exchange)


async def _h1_slow(port: int, answers: list[bytes]) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET http://web.shop.global/slow HTTP/1.1\r\nhost: x\r\n\r\n")
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
        answers.append(data)


async def _h2_slow(port: int, frames: list[Frame]) -> None:
    """A raw HTTP/2 client: h2's own client state machine refuses frames after GOAWAY, which
    is exactly what a graceful drain sends, so frames are parsed with hyperframe."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    headers = [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "web.shop.global"),
        (":path", "/slow"),
    ]
    conn.send_headers(1, headers, end_stream=True)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    buffer = b""
    async with stream:
        await stream.send_all(conn.data_to_send())
        while chunk := await stream.receive_some(65536):
            buffer += chunk
            while len(buffer) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(buffer[:9]))
                if len(buffer) < 9 + length:
                    break
                frame.parse_body(memoryview(buffer[9 : 9 + length]))
                buffer = buffer[9 + length :]
                frames.append(frame)


async def test_drain_finishes_in_flight_requests_then_closes() -> None:
    backend = HeldBackend()
    answers: list[bytes] = []
    frames: list[Frame] = []
    async with trio.open_nursery() as nursery:
        port = await serve_backend(nursery, backend)
        routing = table(route("web.shop", (local_endpoint("w", port),), retry=FAST_RETRY))
        async with running_gateway(routing) as gw, trio.open_nursery() as clients:
            clients.start_soon(_h1_slow, gw.port, answers)
            clients.start_soon(_h2_slow, gw.port, frames)
            await eventually(lambda: backend.waiting == 2)
            gw.drain.drain()
            await eventually(lambda: any(isinstance(f, GoAwayFrame) for f in frames))
            with pytest.raises(OSError):
                await trio.open_tcp_stream("127.0.0.1", gw.port)
            backend.release.set()
            with trio.fail_after(5):
                await eventually(lambda: len(answers) == 1)
                await eventually(
                    lambda: any("END_STREAM" in f.flags for f in frames if f.stream_id == 1)
                )
        nursery.cancel_scope.cancel()
    head = answers[0].split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 200")
    assert b"connection: close" in head
    block = next(f for f in frames if isinstance(f, HeadersFrame) and f.stream_id == 1)
    assert dict(Decoder().decode(block.data))[":status"] == "200"
    goaway = next(f for f in frames if isinstance(f, GoAwayFrame))
    assert goaway.error_code == 0 and goaway.last_stream_id == 1
    # The GOAWAY came before the response: the stream finished after the drain began.
    order = [type(f) for f in frames]
    assert order.index(GoAwayFrame) < order.index(HeadersFrame)
