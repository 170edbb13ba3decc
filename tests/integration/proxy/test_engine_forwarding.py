"""Requests through the outbound listener to local HTTP/1.1 and h2c backends."""

from __future__ import annotations

import json

import httpx
import trio

from proxy.listeners import Exchange, open_listening_socket
from proxy.routes.table import FaultSettings, RetrySettings
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


async def test_http1_and_h2c_clients_reach_http1_and_h2c_backends() -> None:
    h1_backend, h2_backend = EchoBackend("h1"), EchoBackend("h2c")
    async with trio.open_nursery() as nursery:
        h1_port = await serve_backend(nursery, h1_backend)
        h2_port = await serve_backend(nursery, h2_backend)
        routing = table(
            route("web.shop", (local_endpoint("web-1", h1_port),), retry=FAST_RETRY),
            route("api.shop", (local_endpoint("api-1", h2_port, "h2c"),), retry=FAST_RETRY),
        )
        async with running_gateway(routing) as gw:
            proxy_url = f"http://127.0.0.1:{gw.port}"
            async with httpx.AsyncClient(proxy=proxy_url) as client:
                r1 = await client.post("http://web.shop.global/echo?q=1", content=b"hello")
            async with httpx.AsyncClient(http1=False, http2=True) as client:
                r2 = await client.post(
                    f"{proxy_url}/echo", content=b"world", headers={"host": "api.shop.global"}
                )
            assert (r1.status_code, r1.content) == (200, b"hello")
            assert json.loads(r1.headers["x-echo"])["path"] == "/echo?q=1"
            assert (r2.status_code, r2.content, r2.http_version) == (200, b"world", "HTTP/2")
            assert r2.headers["x-backend"] == "h2c"
        nursery.cancel_scope.cancel()
    seen = h1_backend.seen_headers[0]
    assert seen["x-isthmus-source-cluster"] == "a"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert "traceparent" in seen
    assert [r.status for r in gw.observer.requests] == [200, 200]
    assert {r.service for r in gw.observer.requests} == {"web.shop", "api.shop"}


async def test_unknown_service_is_404_naming_it_and_spoofed_headers_are_dropped() -> None:
    backend = EchoBackend()
    async with trio.open_nursery() as nursery:
        port = await serve_backend(nursery, backend)
        routing = table(route("web.shop", (local_endpoint("web-1", port),)))
        async with (
            running_gateway(routing) as gw,
            httpx.AsyncClient(proxy=f"http://127.0.0.1:{gw.port}") as client,
        ):
            missing = await client.get("http://cart.shop.global/")
            ok = await client.get(
                "http://web.shop.global/",
                headers={"x-isthmus-source-cluster": "evil", "x-isthmus-admin": "1"},
            )
        nursery.cancel_scope.cancel()
    assert missing.status_code == 404
    assert "cart.shop" in missing.text
    assert missing.headers["x-isthmus-reason"] == "unknown_service"
    assert ok.status_code == 200
    seen = backend.seen_headers[0]
    assert seen["x-isthmus-source-cluster"] == "a"
    assert "x-isthmus-admin" not in seen


async def test_no_healthy_destination_is_503_with_reason() -> None:
    async with trio.open_nursery() as nursery:
        # A port with nothing listening: every attempt fails to connect.
        dead = trio.socket.socket()
        await dead.bind(("127.0.0.1", 0))
        dead_port = dead.getsockname()[1]
        dead.close()
        routing = table(
            route("web.shop", (local_endpoint("web-1", dead_port),), retry=RetrySettings(2, 5.0)),
            route("empty.shop"),
        )
        async with (
            running_gateway(routing) as gw,
            httpx.AsyncClient(proxy=f"http://127.0.0.1:{gw.port}") as client,
        ):
            failed = await client.get("http://web.shop.global/")
            empty = await client.get("http://empty.shop.global/")
        nursery.cancel_scope.cancel()
    assert failed.status_code == 503
    assert failed.headers["x-isthmus-reason"] == "upstream_connect_failure"
    assert empty.status_code == 503
    assert empty.headers["x-isthmus-reason"] == "no_endpoints"
    assert any(e.kind == "failure" for e in gw.observer.events)


async def test_retry_moves_to_a_healthy_endpoint() -> None:
    good = EchoBackend("good")
    async with trio.open_nursery() as nursery:
        good_port = await serve_backend(nursery, good)
        dead = trio.socket.socket()
        await dead.bind(("127.0.0.1", 0))
        dead_port = dead.getsockname()[1]
        dead.close()
        eps = (local_endpoint("dead", dead_port), local_endpoint("good", good_port))
        routing = table(route("web.shop", eps, retry=FAST_RETRY))
        async with (
            running_gateway(routing) as gw,
            httpx.AsyncClient(proxy=f"http://127.0.0.1:{gw.port}") as client,
        ):
            statuses = [
                (await client.put("http://web.shop.global/", content=b"x")).status_code
                for _ in range(20)
            ]
        nursery.cancel_scope.cancel()
    assert statuses == [200] * 20
    assert good.hits == 20
    assert sum(r.retries for r in gw.observer.requests) >= 1


async def test_fault_injection_aborts_without_reaching_the_backend() -> None:
    backend = EchoBackend()
    async with trio.open_nursery() as nursery:
        port = await serve_backend(nursery, backend)
        fault = FaultSettings(abort_status=418, abort_percent=100.0)
        routing = table(route("web.shop", (local_endpoint("web-1", port),), fault=fault))
        async with (
            running_gateway(routing) as gw,
            httpx.AsyncClient(proxy=f"http://127.0.0.1:{gw.port}") as client,
        ):
            answers = [(await client.get("http://web.shop.global/")) for _ in range(3)]
        nursery.cancel_scope.cancel()
    assert {a.status_code for a in answers} == {418}
    assert {a.headers["x-isthmus-reason"] for a in answers} == {"fault_injected"}
    assert backend.hits == 0


async def test_listeners_share_a_port_with_so_reuseport() -> None:
    first = await open_listening_socket("127.0.0.1", 0, reuse_port=True)
    port = first.getsockname()[1]
    second = await open_listening_socket("127.0.0.1", port, reuse_port=True)
    with first, second:
        assert second.getsockname()[1] == port


async def test_expect_100_continue_is_answered_so_the_body_flows() -> None:
    backend = EchoBackend()
    async with trio.open_nursery() as nursery:
        port = await serve_backend(nursery, backend)
        routing = table(route("web.shop", (local_endpoint("web-1", port),), retry=FAST_RETRY))
        async with running_gateway(routing) as gw:
            stream = await trio.open_tcp_stream("127.0.0.1", gw.port)
            async with stream:
                await stream.send_all(
                    b"POST http://web.shop.global/up HTTP/1.1\r\nhost: web.shop.global\r\n"
                    b"content-length: 5\r\nexpect: 100-continue\r\n\r\n"
                )
                with trio.fail_after(5):
                    interim = await stream.receive_some(1024)
                    await stream.send_all(b"hello")
                    final = b""
                    while not final.endswith(b"hello"):
                        final += await stream.receive_some(1024)
        nursery.cancel_scope.cancel()
    assert interim.startswith(b"HTTP/1.1 100")
    assert b" 200 " in final.split(b"\r\n")[0] + b" "


class HangingBackend(EchoBackend):
    """Never answers (until cancelled)."""

    async def handle(self, exchange: Exchange) -> None:
        self.hits += 1
        await trio.sleep_forever()


async def test_per_try_timeout_retries_elsewhere_and_route_timeout_gives_504() -> None:
    hanging, good = HangingBackend("hang"), EchoBackend("good")
    async with trio.open_nursery() as nursery:
        hang_port = await serve_backend(nursery, hanging)
        good_port = await serve_backend(nursery, good)
        retry = RetrySettings(attempts=2, per_try_timeout_s=0.2)
        routing = table(
            route(
                "web.shop",
                (local_endpoint("hang", hang_port), local_endpoint("good", good_port)),
                retry=retry,
            ),
            route("slow.shop", (local_endpoint("hang", hang_port),), timeout_s=0.3),
        )
        async with (
            running_gateway(routing) as gw,
            httpx.AsyncClient(proxy=f"http://127.0.0.1:{gw.port}") as client,
        ):
            answers = [(await client.get("http://web.shop.global/")).status_code for _ in range(6)]
            slow = await client.get("http://slow.shop.global/")
        nursery.cancel_scope.cancel()
    assert answers == [200] * 6
    assert hanging.hits >= 1
    assert any(r.retries == 1 for r in gw.observer.requests if r.service == "web.shop")
    assert slow.status_code == 504
    assert slow.headers["x-isthmus-reason"] == "request_timeout"


async def test_fault_delay_holds_the_request() -> None:
    backend = EchoBackend()
    async with trio.open_nursery() as nursery:
        port = await serve_backend(nursery, backend)
        fault = FaultSettings(delay_s=0.3, delay_percent=100.0)
        routing = table(route("web.shop", (local_endpoint("web-1", port),), fault=fault))
        async with (
            running_gateway(routing) as gw,
            httpx.AsyncClient(proxy=f"http://127.0.0.1:{gw.port}") as client,
        ):
            start = trio.current_time()
            answer = await client.get("http://web.shop.global/")
            elapsed = trio.current_time() - start
        nursery.cancel_scope.cancel()
    assert answer.status_code == 200
    assert elapsed >= 0.3


class ResettingBackend(EchoBackend):
    """Reads the whole request body, then drops the connection without answering."""

    async def handle(self, exchange: Exchange) -> None:
        self.hits += 1
        if exchange.body is not None:
            async for _ in exchange.body:
                pass
        await exchange.abort()


async def test_small_bodies_are_replayed_on_retry_large_ones_are_not() -> None:
    resetting, good = ResettingBackend("reset"), EchoBackend("good")
    async with trio.open_nursery() as nursery:
        reset_port = await serve_backend(nursery, resetting)
        good_port = await serve_backend(nursery, good)
        eps = (local_endpoint("reset", reset_port), local_endpoint("good", good_port))
        # Priority 0 is the resetting backend, so every request tries it first.
        routing = table(route("web.shop", (eps[0],), (eps[1],), retry=FAST_RETRY))
        small, large = b"s" * 1000, b"L" * (200 * 1024)
        async with (
            running_gateway(routing) as gw,
            httpx.AsyncClient(proxy=f"http://127.0.0.1:{gw.port}") as client,
        ):
            replayed = await client.put("http://web.shop.global/echo", content=small)
            not_replayed = await client.put("http://web.shop.global/echo", content=large)
        nursery.cancel_scope.cancel()
    assert (replayed.status_code, replayed.content) == (200, small)
    assert replayed.headers["x-backend"] == "good"
    assert not_replayed.status_code == 502
    assert not_replayed.headers["x-isthmus-reason"] == "upstream_reset"
    assert resetting.hits == 2


async def test_the_authority_reaches_the_backend_exactly_once() -> None:
    """HTTP/1.1 backends get one Host; h2c backends get :authority and no stray Host."""
    h1_backend, h2_backend = EchoBackend("h1"), EchoBackend("h2c")
    async with trio.open_nursery() as nursery:
        h1_port = await serve_backend(nursery, h1_backend)
        h2_port = await serve_backend(nursery, h2_backend)
        routing = table(
            route("web.shop", (local_endpoint("web-1", h1_port),)),
            route("api.shop", (local_endpoint("api-1", h2_port, "h2c"),)),
        )
        async with running_gateway(routing) as gw:
            for service in (b"web.shop.global", b"api.shop.global"):
                stream = await trio.open_tcp_stream("127.0.0.1", gw.port)
                async with stream:
                    await stream.send_all(
                        b"GET http://%s/ HTTP/1.1\r\nhost: %s\r\n\r\n" % (service, service)
                    )
                    with trio.fail_after(5):
                        assert (await stream.receive_some(4096)).startswith(b"HTTP/1.1 200")
        nursery.cancel_scope.cancel()
    assert h1_backend.raw_headers[0].count(b"host") == 1
    assert h2_backend.raw_headers[0].count(b"host") == 0


async def test_swapping_the_table_under_traffic_fails_no_request() -> None:
    old, new = EchoBackend("old"), EchoBackend("new")
    async with trio.open_nursery() as nursery:
        old_port = await serve_backend(nursery, old)
        new_port = await serve_backend(nursery, new)
        before = table(route("web.shop", (local_endpoint("old", old_port),)))
        after = table(route("web.shop", (local_endpoint("new", new_port),)))
        statuses: list[int] = []
        async with (
            running_gateway(before) as gw,
            httpx.AsyncClient(proxy=f"http://127.0.0.1:{gw.port}") as client,
        ):

            async def load() -> None:
                for _ in range(60):
                    statuses.append((await client.get("http://web.shop.global/")).status_code)

            async with trio.open_nursery() as clients:
                for _ in range(3):
                    clients.start_soon(load)
                await eventually(lambda: len(statuses) >= 30)
                gw.engine.swap_table(after)
            last = await client.get("http://web.shop.global/")
        nursery.cancel_scope.cancel()
    assert statuses == [200] * 180
    assert old.hits > 0 and new.hits > 0
    assert last.headers["x-backend"] == "new"


class StallingBodyBackend(EchoBackend):
    """Starts a chunked response, sends a part of it, then never finishes."""

    async def handle(self, exchange: Exchange) -> None:
        self.hits += 1
        await exchange.start_response(200, [(b"content-type", b"text/plain")])
        await exchange.send_data(b"partial")
        await trio.sleep_forever()


async def test_route_timeout_is_no_endpoint_failure_and_also_bounds_a_stalled_body() -> None:
    hanging, stalling = HangingBackend("hang"), StallingBodyBackend("stall")
    async with trio.open_nursery() as nursery:
        hang_port = await serve_backend(nursery, hanging)
        stall_port = await serve_backend(nursery, stalling)
        routing = table(
            route("slow.shop", (local_endpoint("hang", hang_port),), timeout_s=0.2),
            route("stall.shop", (local_endpoint("stall", stall_port),), timeout_s=0.3),
        )
        async with (
            running_gateway(routing) as gw,
            httpx.AsyncClient(proxy=f"http://127.0.0.1:{gw.port}") as client,
        ):
            slow = [await client.get("http://slow.shop.global/") for _ in range(4)]
            with trio.fail_after(5):  # the route's 0.3 s ends the relay, not the client
                stalled = await trio.open_tcp_stream("127.0.0.1", gw.port)
                async with stalled:
                    await stalled.send_all(b"GET / HTTP/1.1\r\nhost: stall.shop.global\r\n\r\n")
                    received = b""
                    while data := await stalled.receive_some(65536):
                        received += data
        nursery.cancel_scope.cancel()
    assert [(r.status_code, r.headers["x-isthmus-reason"]) for r in slow] == [
        (504, "request_timeout")
    ] * 4
    # the service's deadline passing says nothing about the endpoint: no outlier outcome
    assert [e.kind for e in gw.observer.events if e.endpoint == "hang"] == []
    assert received.startswith(b"HTTP/1.1 200") and b"partial" in received
    assert not received.endswith(b"0\r\n\r\n")  # cut short, not a complete chunked body
