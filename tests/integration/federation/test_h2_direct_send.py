"""Response chunks framed from the app's own task (``install_h2_direct_send``) arrive whole
and in order, also when a chunk spans several frames, exceeds the flow-control window (then
hypercorn's own buffered path sends it) or follows one still buffered."""

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

from federation.service import hypercorn_compat
from federation.service.hypercorn_compat import install_h2_direct_send
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
    tls = ensure_federation_tls(tmp_path / "ca", hosts=("127.0.0.1",))
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.certfile, config.keyfile = str(tls.cert_path), str(tls.key_path)
    config.accesslog = config.errorlog = None
    binds = await nursery.start(partial(hypercorn.trio.serve, _app, config, mode="asgi"))  # type: ignore[arg-type]
    port = binds[0].rsplit(":", 1)[1]
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
