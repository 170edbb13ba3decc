"""200 MiB through the proxy in each direction without memory growing with the body size."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from proxy.routes.table import RetrySettings
from tests.integration.proxy.backends import CHUNK, EchoBackend
from tests.integration.proxy.harness import (
    local_endpoint,
    route,
    running_gateway,
    serve_backend,
    table,
)

SIZE = 200 * 1024 * 1024
HOST = {"host": "bulk.shop.global"}
SLOW_OK = RetrySettings(attempts=1, per_try_timeout_s=120.0)
# Every buffer on the path (socket reads, h2 windows, h11) is bounded; 200 MiB must not show.
RSS_GROWTH_BOUND = 48 * 1024 * 1024


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


async def _sample_rss(peak: list[int]) -> None:
    for _ in range(100_000):
        peak[0] = max(peak[0], _rss())
        await trio.sleep(0.02)


def _client(port: int, h2: bool) -> httpx.AsyncClient:
    if h2:  # prior-knowledge h2c straight to the listener, routed by :authority
        return httpx.AsyncClient(http1=False, http2=True, timeout=120)
    return httpx.AsyncClient(proxy=f"http://127.0.0.1:{port}", timeout=120)


def _url(port: int, h2: bool, path: str) -> str:
    return f"http://127.0.0.1:{port}{path}" if h2 else f"http://bulk.shop.global{path}"


async def _upload_body() -> AsyncIterator[bytes]:
    for _ in range(SIZE // len(CHUNK)):
        yield CHUNK


@pytest.mark.parametrize(("client_h2", "kind"), [(False, "http1"), (True, "h2c")])
async def test_200_mib_up_and_down_stream_in_bounded_memory(client_h2: bool, kind: str) -> None:
    """HTTP/1.1 client -> HTTP/1.1 backend, and h2c client -> h2c backend (flow control)."""
    backend = EchoBackend()
    async with trio.open_nursery() as nursery:
        port = await serve_backend(nursery, backend)
        routing = table(
            route(
                "bulk.shop", (local_endpoint("bulk", port, kind),), retry=SLOW_OK, timeout_s=120.0
            )
        )
        async with (
            running_gateway(routing) as gw,
            _client(gw.port, client_h2) as client,
        ):
            baseline = _rss()
            peak = [baseline]
            async with trio.open_nursery() as sampler:
                sampler.start_soon(_sample_rss, peak)
                with trio.fail_after(120):
                    up = await client.post(
                        _url(gw.port, client_h2, "/sink"), content=_upload_body(), headers=HOST
                    )
                    received = 0
                    url = _url(gw.port, client_h2, f"/bytes/{SIZE}")
                    async with client.stream("GET", url, headers=HOST) as down:
                        async for chunk in down.aiter_raw():
                            received += len(chunk)
                sampler.cancel_scope.cancel()
        nursery.cancel_scope.cancel()
    assert (up.status_code, up.text) == (200, str(SIZE))
    assert (down.status_code, received) == (200, SIZE)
    growth = peak[0] - baseline
    assert growth < RSS_GROWTH_BOUND, f"RSS grew by {growth / 2**20:.1f} MiB"
    records = {r.path: r for r in gw.observer.requests}
    assert records["/sink"].bytes_received == SIZE
    assert records[f"/bytes/{SIZE}"].bytes_sent == SIZE
