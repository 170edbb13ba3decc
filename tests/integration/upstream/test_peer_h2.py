"""Peer gateway connections: mTLS HTTP/2, multiplexing, flow control, GOAWAY, resets, probes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from federation.trust import tls as trust_tls
from proxy.errors import (
    ConnectFailure,
    GoawayReceived,
    RefusedStream,
    ResetBeforeHeaders,
    UpstreamStreamBroken,
    UpstreamTimeout,
)
from proxy.retry import FailureKind
from proxy.routes.table import Endpoint
from proxy.upstream import (
    PoolSettings,
    UpstreamPools,
    UpstreamRequest,
    UpstreamResponse,
    open_upstream_pools,
)
from tests.helpers.pki import bundle_set, issue_svid, make_ca
from tests.integration.upstream.conftest import CAS, GATEWAY_B, Pki, local, peer
from tests.integration.upstream.servers import H2Server


def get(path: bytes, body: AsyncIterator[bytes] | None = None) -> UpstreamRequest:
    method = b"GET" if body is None else b"POST"
    return UpstreamRequest(method, b"https", b"checkout.shop.global", path, [], body)


async def read_all(response: UpstreamResponse) -> bytes:
    return b"".join([chunk async for chunk in response.body])


async def burst(pools: UpstreamPools, endpoint: Endpoint, n: int) -> list[tuple[int, bytes]]:
    results: list[tuple[int, bytes]] = []

    async def one() -> None:
        response = await pools.request(endpoint, get(b"/hello"))
        results.append((response.status, await read_all(response)))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for _ in range(n):
                nursery.start_soon(one)
    return results


async def test_many_concurrent_requests_share_one_peer_connection(
    peer_server: H2Server, pki: Pki
) -> None:
    settings = PoolSettings(peer_connections=1)
    async with open_upstream_pools(
        client_context_for=lambda _: pki.client_context,
        verify_peer=pki.verify_peer,
        settings=settings,
    ) as pools:
        endpoint = peer(peer_server.port)
        # 300 concurrent requests, the server allows 100 concurrent streams: they queue.
        assert await burst(pools, endpoint, 300) == [(200, b"hello")] * 300
        assert peer_server.connections == 1
        assert pools.connection_count(endpoint) == 1
    assert pki.verify_calls == [GATEWAY_B]


async def test_a_saturated_peer_connection_spills_onto_a_second_one(
    pools: UpstreamPools, peer_server: H2Server
) -> None:
    endpoint = peer(peer_server.port)
    assert await burst(pools, endpoint, 300) == [(200, b"hello")] * 300
    assert peer_server.connections == 2  # PoolSettings.peer_connections default
    assert await burst(pools, endpoint, 10) == [(200, b"hello")] * 10
    assert peer_server.connections == 2  # long-lived: reused, not redialled


async def test_wrong_peer_identity_fails_to_connect_and_sends_nothing(
    pools: UpstreamPools, peer_server: H2Server
) -> None:
    endpoint = peer(peer_server.port, identity="spiffe://b.test/ns/other/sa/impostor")
    with pytest.raises(ConnectFailure) as info:
        await pools.request(endpoint, get(b"/hello"))
    assert "spiffe://b.test/ns/other/sa/impostor" in str(info.value)
    assert "gw-b" in str(info.value)
    assert info.value.failure is FailureKind.CONNECT_FAILURE
    assert peer_server.requests == 0


async def test_connection_refused_is_a_connect_failure(pools: UpstreamPools) -> None:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()
    with pytest.raises(ConnectFailure, match=f"127.0.0.1:{port}"):
        await pools.request(peer(port), get(b"/hello"))
    with pytest.raises(ConnectFailure):
        await pools.request(local(port, "h2c"), get(b"/hello"))


async def test_reset_before_headers_and_refused_stream(
    pools: UpstreamPools, peer_server: H2Server
) -> None:
    endpoint = peer(peer_server.port)
    with pytest.raises(ResetBeforeHeaders) as info:
        await pools.request(endpoint, get(b"/reset"))
    assert info.value.failure is FailureKind.RESET_BEFORE_HEADERS
    with pytest.raises(RefusedStream) as refused:
        await pools.request(endpoint, get(b"/refuse"))
    assert refused.value.failure is FailureKind.GOAWAY
    with pytest.raises(ResetBeforeHeaders, match=":status"):
        await pools.request(endpoint, get(b"/bad-status"))  # peer leg: h2 validation is off
    response = await pools.request(endpoint, get(b"/hello"))  # the connection survives
    assert await read_all(response) == b"hello"
    assert peer_server.connections == 1


async def test_goaway_fails_unprocessed_streams_and_next_request_uses_a_new_connection(
    pools: UpstreamPools, peer_server: H2Server
) -> None:
    endpoint = peer(peer_server.port)
    outcomes: dict[int, BaseException | None] = {}

    async def hang(i: int) -> None:
        try:
            await pools.request(endpoint, get(b"/hang"))
        except GoawayReceived as err:
            outcomes[i] = err

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for i in range(3):
                nursery.start_soon(hang, i)
                while peer_server.requests <= i:  # streams 1, 3, 5 in that order
                    await trio.sleep(0.005)
            await peer_server.goaway_all(last_stream_id=1)
            while len(outcomes) < 2:
                await trio.sleep(0.005)
            response = await pools.request(endpoint, get(b"/hello"))
            assert await read_all(response) == b"hello"
            nursery.cancel_scope.cancel()  # stream 1 was processed and still hangs
    assert sorted(outcomes) == [1, 2]
    assert all(e is not None and e.failure is FailureKind.GOAWAY for e in outcomes.values())
    assert peer_server.connections == 2


async def test_streams_below_goaway_last_id_complete_while_the_connection_drains(
    pools: UpstreamPools, peer_server: H2Server
) -> None:
    endpoint = peer(peer_server.port)
    total = 4 << 20
    response = await pools.request(endpoint, get(b"/download?n=%d" % total))  # stream 1
    first = await response.body.__anext__()
    await peer_server.goaway_all(last_stream_id=1)
    await trio.sleep(0.05)
    fresh = await pools.request(endpoint, get(b"/hello"))  # not on the draining connection
    assert await read_all(fresh) == b"hello"
    assert peer_server.connections == 2
    assert len(first) + len(await read_all(response)) == total
    with trio.fail_after(2):
        while pools.connection_count(endpoint) > 1:
            await trio.sleep(0.01)


async def test_download_is_paced_by_the_consumer(
    pools: UpstreamPools, peer_server: H2Server
) -> None:
    total = 8 << 20
    response = await pools.request(peer(peer_server.port), get(b"/download?n=%d" % total))
    first = await response.body.__anext__()
    await trio.sleep(0.3)  # the consumer stalls; the server must stall too
    assert peer_server.downloaded <= len(first) + (1 << 20) + 65536
    received = len(first) + len(await read_all(response))
    assert received == total


async def test_upload_is_paced_by_the_upstream_reader(
    pools: UpstreamPools, peer_server: H2Server
) -> None:
    chunk, count = b"u" * 65536, 256  # 16 MiB
    produced = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal produced
        for _ in range(count):
            produced += len(chunk)
            yield chunk

    async with trio.open_nursery() as nursery:
        result: list[int] = []

        async def send() -> None:
            response = await pools.request(peer(peer_server.port), get(b"/slow-upload", body()))
            result.append(response.status)
            await response.aclose()

        nursery.start_soon(send)
        await trio.sleep(0.3)  # the server does not read yet
        assert produced <= 65535 + 256 * 1024 + 2 * len(chunk)
        peer_server.upload_gate.set()
    assert result == [200]
    assert peer_server.uploaded == produced == len(chunk) * count


async def test_echo_streams_both_ways(pools: UpstreamPools, peer_server: H2Server) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB

    async def body() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 100_000):
            yield payload[i : i + 100_000]

    response = await pools.request(peer(peer_server.port), get(b"/echo", body()))
    assert response.status == 200
    assert await read_all(response) == payload


async def test_tunnel_echo_over_h2_connect(pools: UpstreamPools, peer_server: H2Server) -> None:
    tunnel = await pools.open_tunnel(peer(peer_server.port), "db.shop.global:5432")
    payload = b"t" * (3 << 20)
    received = bytearray()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:

            async def send() -> None:
                await tunnel.send_all(b"ping")
                await tunnel.send_all(payload)
                await tunnel.send_eof()

            nursery.start_soon(send)
            while chunk := await tunnel.receive_some(65536):
                received += chunk
    await tunnel.aclose()
    assert bytes(received) == b"ping" + payload
    assert peer_server.paths == [b"CONNECT"]


async def test_probe_true_false_and_unreachable(
    pools: UpstreamPools, peer_server: H2Server
) -> None:
    endpoint = peer(peer_server.port)
    assert await pools.probe(endpoint)
    peer_server.ready = False
    assert not await pools.probe(endpoint)
    assert peer_server.connections == 1  # probes ride the existing connection
    assert not await pools.probe(peer(1))


async def test_no_headers_within_timeout(pools: UpstreamPools, peer_server: H2Server) -> None:
    with pytest.raises(UpstreamTimeout) as info:
        await pools.request(peer(peer_server.port), get(b"/hang"), timeout_s=0.2)
    assert info.value.failure is FailureKind.PER_TRY_TIMEOUT


async def test_header_timeout_on_an_established_connection_fails_only_that_request(
    pools: UpstreamPools, peer_server: H2Server
) -> None:
    endpoint = peer(peer_server.port)
    response = await pools.request(endpoint, get(b"/hello"), timeout_s=2)
    assert (response.status, await read_all(response)) == (200, b"hello")
    with trio.fail_after(2), pytest.raises(UpstreamTimeout) as info:
        await pools.request(endpoint, get(b"/hang"), timeout_s=0.2)
    assert info.value.failure is FailureKind.PER_TRY_TIMEOUT
    response = await pools.request(endpoint, get(b"/hello"), timeout_s=2)
    assert (response.status, await read_all(response)) == (200, b"hello")
    assert peer_server.connections == 1


async def test_header_timeout_later_than_an_answered_requests_deadline(
    pools: UpstreamPools, peer_server: H2Server
) -> None:
    """The header timer is not woken for a deadline later than the one it sleeps until
    (an answered request's): that later deadline must still fire."""
    endpoint = peer(peer_server.port)
    response = await pools.request(endpoint, get(b"/hello"), timeout_s=0.3)
    assert (response.status, await read_all(response)) == (200, b"hello")
    with trio.fail_after(3), pytest.raises(UpstreamTimeout) as info:
        await pools.request(endpoint, get(b"/hang"), timeout_s=0.6)
    assert info.value.failure is FailureKind.PER_TRY_TIMEOUT
    assert peer_server.connections == 1


async def test_h2c_backend_and_retain_closes_vanished_pools(
    pools: UpstreamPools, h2c_server: H2Server
) -> None:
    endpoint = local(h2c_server.port, "h2c")
    response = await pools.request(endpoint, get(b"/hello"))
    assert (response.status, await read_all(response)) == (200, b"hello")
    pools.retain([])
    with trio.fail_after(5):
        while h2c_server.live:
            await trio.sleep(0.01)
    assert pools.connection_count(endpoint) == 0
    assert h2c_server.goaways == 1  # closed politely


async def test_unanswered_keepalive_ping_replaces_the_connection(
    pki: Pki, peer_server: H2Server
) -> None:
    settings = PoolSettings(ping_interval_s=0.1, ping_timeout_s=0.5)
    async with open_upstream_pools(
        client_context_for=lambda _: pki.client_context,
        verify_peer=pki.verify_peer,
        settings=settings,
    ) as pools:
        endpoint = peer(peer_server.port)
        assert await read_all(await pools.request(endpoint, get(b"/hello"))) == b"hello"
        await trio.sleep(0.3)  # pings answered: the connection stays
        assert pools.connection_count(endpoint) == 1
        peer_server.frozen = True
        with trio.fail_after(3):
            while pools.connection_count(endpoint):
                await trio.sleep(0.02)
        peer_server.frozen = False
        assert await read_all(await pools.request(endpoint, get(b"/hello"))) == b"hello"
    assert peer_server.connections == 2


async def test_cancelled_request_resets_its_stream_and_keeps_the_connection(
    pools: UpstreamPools, peer_server: H2Server
) -> None:
    endpoint = peer(peer_server.port)
    with trio.move_on_after(0.2) as scope:
        await pools.request(endpoint, get(b"/hang"))
    assert scope.cancelled_caught
    with trio.fail_after(2):
        while peer_server.resets < 1:
            await trio.sleep(0.01)
    response = await pools.request(endpoint, get(b"/hello"))
    assert await read_all(response) == b"hello"
    assert peer_server.connections == 1


async def test_connection_lost_mid_body_breaks_the_stream(
    pools: UpstreamPools, peer_server: H2Server
) -> None:
    response = await pools.request(peer(peer_server.port), get(b"/download?n=%d" % (64 << 20)))
    await response.body.__anext__()
    for conn in list(peer_server.live):
        await trio.aclose_forcefully(conn.stream)
    with pytest.raises(UpstreamStreamBroken) as info:
        await read_all(response)
    assert info.value.failure is None  # not retryable: part of the body was delivered


async def test_untrusted_peer_certificate_is_a_connect_failure(
    pools: UpstreamPools, nursery: trio.Nursery
) -> None:
    stranger = make_ca("c.test")
    context = trust_tls.server_context(
        issue_svid(stranger, GATEWAY_B.replace("b.test", "c.test")), bundle_set(stranger), ["h2"]
    )
    server = H2Server(ssl_context=context)
    await nursery.start(server.serve)
    with pytest.raises(ConnectFailure, match="TLS handshake"):
        await pools.request(peer(server.port), get(b"/hello"))
    assert server.requests == 0


async def test_pools_aclose_fails_in_flight_streams(
    pools: UpstreamPools, peer_server: H2Server
) -> None:
    failures: list[BaseException] = []

    async def hang() -> None:
        try:
            await pools.request(peer(peer_server.port), get(b"/hang"))
        except ResetBeforeHeaders as err:
            failures.append(err)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(hang)
        with trio.fail_after(2):
            while peer_server.requests < 1:
                await trio.sleep(0.01)
        await pools.aclose()
    assert len(failures) == 1
    with pytest.raises(ConnectFailure, match="closed"):
        await pools.request(peer(peer_server.port), get(b"/hello"))


async def test_retain_drains_a_vanished_peer_after_its_streams_finish(
    pools: UpstreamPools, peer_server: H2Server
) -> None:
    endpoint = peer(peer_server.port)
    response = await pools.request(endpoint, get(b"/download?n=%d" % (4 << 20)))
    pools.retain([peer(peer_server.port, key="gw-c")])
    await trio.sleep(0.05)
    assert len(peer_server.live) == 1  # still serving the in-flight download
    assert len(await read_all(response)) == 4 << 20
    with trio.fail_after(2):
        while peer_server.live:
            await trio.sleep(0.01)
    assert peer_server.goaways == 1


async def test_peer_without_h2_alpn_is_a_connect_failure(
    pools: UpstreamPools, nursery: trio.Nursery
) -> None:
    http1_only = trust_tls.server_context(issue_svid(CAS[1], GATEWAY_B), bundle_set(*CAS), [])
    server = H2Server(ssl_context=http1_only)
    await nursery.start(server.serve)
    with pytest.raises(ConnectFailure, match="ALPN"):
        await pools.request(peer(server.port), get(b"/hello"))
