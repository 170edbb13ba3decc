"""Tiny trio backends for the proxy's tests: an HTTP echo/generator handler (served over
HTTP/1.1 and h2c by the proxy's own listener code) and a raw TCP echo server."""

from __future__ import annotations

import json
from collections import Counter

import trio

from proxy.listeners import Exchange

CHUNK = bytes(range(256)) * 256  # 64 KiB


class EchoBackend:
    """``/bytes/N`` streams N bytes; ``/sink`` counts the request body; anything else echoes
    the request body with a JSON ``x-echo`` header describing the request head.
    ``hits`` counts requests, ``status`` forces a status for every answer."""

    def __init__(self, name: str = "backend") -> None:
        self.name = name
        self.hits = 0
        self.status = 200
        self.paths: Counter[str] = Counter()
        self.seen_headers: list[dict[str, str]] = []
        self.raw_headers: list[list[bytes]] = []

    async def handle(self, exchange: Exchange) -> None:
        self.hits += 1
        path = exchange.path.decode()
        self.paths[path] += 1
        head = {n.decode(): v.decode() for n, v in exchange.headers}
        self.seen_headers.append(head)
        self.raw_headers.append([n for n, _ in exchange.headers])
        info = json.dumps(
            {"method": exchange.method.decode(), "path": path, "backend": self.name}
        ).encode()
        base = [(b"x-echo", info), (b"x-backend", self.name.encode())]
        if path.startswith("/bytes/"):
            await self._generate(exchange, int(path.split("/")[2]), base)
            return
        if path == "/sink":
            total = 0
            if exchange.body is not None:
                async for chunk in exchange.body:
                    total += len(chunk)
            body = str(total).encode()
        else:
            body = b""
            if exchange.body is not None:
                async for chunk in exchange.body:
                    body += chunk
        headers = [*base, (b"content-length", str(len(body)).encode())]
        await exchange.start_response(self.status, headers, end_stream=not body)
        if body:
            await exchange.send_data(body)
            await exchange.end_response()

    async def _generate(
        self, exchange: Exchange, size: int, base: list[tuple[bytes, bytes]]
    ) -> None:
        if exchange.body is not None:
            async for _ in exchange.body:
                pass
        await exchange.start_response(200, [*base, (b"content-length", str(size).encode())])
        view = memoryview(CHUNK)
        left = size
        while left > 0:
            n = min(left, len(CHUNK))
            await exchange.send_data(bytes(view[:n]))
            left -= n
        await exchange.end_response()


async def serve_tcp_echo(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """A TCP echo server on 127.0.0.1 (half-close aware); reports its port."""

    async def echo(stream: trio.SocketStream) -> None:
        async with stream:
            while data := await stream.receive_some(65536):
                await stream.send_all(data)
            await stream.send_eof()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(echo, listeners)
