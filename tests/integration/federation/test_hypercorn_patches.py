"""The hypercorn patches of ``federation.service.hypercorn_compat``: response chunks framed
from the app's own task (``install_h2_direct_send``) arrive whole and in order, also when a
chunk spans several frames, exceeds the flow-control window (then hypercorn's own buffered path
sends it) or follows one still buffered; the read loop without a per-read deadline
(``install_read_loop_without_timeout``) still honours a configured ``read_timeout``; request body
chunks taken in the read task (``install_direct_body``) or queued reach the app in order."""

from __future__ import annotations

import ssl
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import hypercorn.trio
import pytest
import trio
from hypercorn.config import Config
from hypercorn.events import Closed
from hypercorn.trio.tcp_server import TCPServer

from federation.service import hypercorn_compat
from federation.service.hypercorn_compat import (
    DIRECT_BODY,
    install_direct_body,
    install_h2_direct_send,
    install_read_loop_without_timeout,
)
from federation.service.tls import ensure_federation_tls

#: small ones (framed at once), 40 KiB (three frames), one over the window httpx grants
#: (16 MiB + 64 KiB: buffered), small ones right after it (buffered too, behind it)
CHUNKS = (
    [b"a%03d\n" % i for i in range(50)]
    + [b"B" * 40_000, b"C" * (2**24 + 70_000)]
    + [b"d%03d\n" % i for i in range(50)]
)


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for chunk in CHUNKS:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await trio.sleep(0.05)  # the client drained the window: later chunks go out at once again
    for index in range(20):
        await send({"type": "http.response.body", "body": b"e%03d\n" % index, "more_body": True})
    await send({"type": "http.response.body", "body": b"end", "more_body": False})


async def _serve(nursery: trio.Nursery, tmp_path: Path, app: Any = None) -> Any:
    """Serve ``app`` (default ``_app``) over TLS on a free port: ``(tls, port)``."""
    tls = ensure_federation_tls(tmp_path / "ca", hosts=("127.0.0.1",))
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.certfile, config.keyfile = str(tls.cert_path), str(tls.key_path)
    config.accesslog = config.errorlog = None
    serve = partial(hypercorn.trio.serve, app or _app, config, mode="asgi")
    binds = await nursery.start(serve)  # type: ignore[arg-type]
    return tls, int(binds[0].rsplit(":", 1)[1])


async def test_chunks_arrive_whole_and_in_order(
    nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_h2_direct_send()
    framed: list[bool] = []
    original = hypercorn_compat._frame_now

    def spy(protocol: Any, event: Any) -> bool:
        framed.append(original(protocol, event))
        return framed[-1]

    monkeypatch.setattr(hypercorn_compat, "_frame_now", spy)
    install_read_loop_without_timeout()
    tls, port = await _serve(nursery, tmp_path)
    async with httpx.AsyncClient(
        verify=ssl.create_default_context(cafile=tls.ca_path), http2=True, http1=False
    ) as client:
        with trio.fail_after(20):
            for _ in range(2):  # several streams of one connection, one after the other
                response = await client.get(f"https://127.0.0.1:{port}/")
                assert response.http_version == "HTTP/2"
                expected = b"".join(CHUNKS) + b"".join(b"e%03d\n" % i for i in range(20))
                assert response.content == expected + b"end"
    assert framed.count(True) >= 2 * 70  # the small ones went out from the app's task
    assert False in framed  # the one over the window (and those behind it) were buffered


class _SilentConnection:
    """What ``TCPServer._read_data`` uses of its server: a stream that never sends anything."""

    def __init__(self, read_timeout: int | None) -> None:
        self.config = Config()
        self.config.read_timeout = read_timeout
        self.stream = self
        self.protocol = self
        self.handled: list[object] = []

    async def receive_some(self, max_bytes: int) -> bytes:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def handle(self, event: object) -> None:
        self.handled.append(event)


async def test_a_configured_read_timeout_still_ends_the_read_loop_of_a_silent_peer() -> None:
    install_read_loop_without_timeout()
    silent = _SilentConnection(read_timeout=1)
    with trio.fail_after(10):
        await TCPServer._read_data(silent)  # type: ignore[arg-type]
    assert [type(event) for event in silent.handled] == [Closed]
    waiting = _SilentConnection(read_timeout=None)  # no timeout: reads until the peer acts
    with trio.move_on_after(1.5) as scope:
        await TCPServer._read_data(waiting)  # type: ignore[arg-type]
    assert scope.cancelled_caught and waiting.handled == []


#: set by ``_body_app`` once it holds every paced chunk (30 x 3 bytes) with nothing queued;
#: the test installs a fresh event before each request
_ALL_IN = [trio.Event()]
_PACED_BYTES = 90


async def _body_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Takes every body chunk it can directly, declines every third offer, raises on ``boom``;
    answers what it got, in the order it got it, and how."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    direct = scope["extensions"][DIRECT_BODY]
    got: list[bytes] = []
    offers = [0]

    def consume(chunk: bytes) -> bool:
        if b"boom" in chunk:
            raise RuntimeError("a bug in the consumer")
        offers[0] += 1
        if offers[0] % 3 == 0:
            return False
        got.append(b"D" + chunk)
        note_progress()
        return True

    def note_progress() -> None:
        if direct.queued == 0 and sum(len(part) - 1 for part in got) >= _PACED_BYTES:
            _ALL_IN[0].set()

    direct.consume = consume
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            got.append(b"left")
            break
        got.append(b"Q" + message["body"])
        await trio.sleep(0.01)  # chunks arriving meanwhile must queue behind this one
        if not message["more_body"]:
            break
        direct.received()
        note_progress()
    direct.consume = None
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"|".join(got), "more_body": False})


async def test_body_chunks_taken_directly_or_queued_arrive_in_order(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    install_direct_body()
    tls, port = await _serve(nursery, tmp_path, _body_app)
    url = f"https://127.0.0.1:{port}/"

    async def chunks(last: bytes) -> Any:
        for index in range(30):
            yield b"c%02d" % index
            await trio.sleep(0.004 if index % 4 else 0)
        await _ALL_IN[0].wait()  # the queue is drained: the last chunk is offered to consume
        yield last

    async def post(last: bytes) -> httpx.Response:
        _ALL_IN[0] = trio.Event()
        return await client.post(url, content=chunks(last))

    async with httpx.AsyncClient(
        verify=ssl.create_default_context(cafile=tls.ca_path), http2=True, http1=False
    ) as client:
        with trio.fail_after(20):
            response = await post(b"end")
            parts = response.content.split(b"|")
            body = b"".join(part[1:] for part in parts)
            assert body == b"".join(b"c%02d" % i for i in range(30)) + b"end"
            kinds = {part[:1] for part in parts}
            assert kinds == {b"D", b"Q"}  # both ways were taken
            response = await post(b"boom")
            assert response.content.split(b"|")[-1] == b"left"  # the request ended, not the server
            response = await post(b"end")
            assert response.status_code == 200
