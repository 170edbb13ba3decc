"""Real mTLS over 127.0.0.1 with SVIDs from two trust domains, the post-handshake SPIFFE check,
and context rotation that leaves established connections alone."""

from __future__ import annotations

import functools
import os
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
import trio

from federation.trust import (
    BundleSet,
    SpiffeId,
    SvidVerificationError,
    TlsCredentials,
    X509Svid,
    client_context,
    peer_chain,
    server_context,
    ssl_object_of,
    verify_peer,
)
from tests.helpers.pki import TestCa, bundle_set, issue_svid, make_ca

ALPN = ["h2"]
TIMEOUT = 10


@dataclass
class ServerLog:
    """What the server saw: verified peers and rejections (with their reasons).

    A client can see its connection fail before the server task has recorded why, so tests
    ``await verdict()`` (one per connection, in order) before reading the lists."""

    accepted: list[SpiffeId] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    alpn: list[str | None] = field(default_factory=list)
    _verdicts: tuple[trio.MemorySendChannel[str], trio.MemoryReceiveChannel[str]] = field(
        default_factory=lambda: trio.open_memory_channel[str](64)
    )

    def reject(self, why: str) -> None:
        self.rejected.append(why)
        self._verdicts[0].send_nowait(f"rejected: {why}")

    def accept(self, peer: SpiffeId, alpn: str | None) -> None:
        self.accepted.append(peer)
        self.alpn.append(alpn)
        self._verdicts[0].send_nowait(f"accepted: {peer}")

    async def verdict(self) -> str:
        return await self._verdicts[1].receive()


@asynccontextmanager
async def echo_server(
    context: Callable[[], ssl.SSLContext], bundles: Callable[[], BundleSet]
) -> AsyncIterator[tuple[int, ServerLog]]:
    """An mTLS echo server on 127.0.0.1 that takes ``context()`` for each new connection and
    checks every peer with ``verify_peer`` against ``bundles()``."""
    log = ServerLog()

    async def handle(tcp: trio.SocketStream) -> None:
        stream = trio.SSLStream(tcp, context(), server_side=True)
        try:
            await stream.do_handshake()
            peer = verify_peer(ssl_object_of(stream), bundles(), datetime.now(UTC))
        except trio.BrokenResourceError as err:
            log.reject(f"openssl: {err.__cause__}")
            await trio.aclose_forcefully(stream)
            return
        except SvidVerificationError as err:
            log.reject(err.reason)
            await stream.aclose()
            return
        log.accept(peer, stream.selected_alpn_protocol())
        async with stream:
            try:
                async for data in stream:
                    await stream.send_all(data)
            except trio.BrokenResourceError:
                pass  # the client went away without close_notify

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, handle, 0, host="127.0.0.1")
        )
        yield listeners[0].socket.getsockname()[1], log
        nursery.cancel_scope.cancel()


async def connect(
    port: int, ctx: ssl.SSLContext, sni: str | None = None
) -> trio.SSLStream[trio.SocketStream]:
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    stream = trio.SSLStream(tcp, ctx, server_hostname=sni)
    await stream.do_handshake()
    return stream


async def echo(stream: trio.SSLStream[trio.SocketStream], data: bytes) -> bytes:
    await stream.send_all(data)
    return bytes(await stream.receive_some(1024))


@pytest.fixture(scope="module")
def cas() -> tuple[TestCa, TestCa]:
    return make_ca("a.test"), make_ca("b.test", intermediate=True)


async def test_mtls_two_domains_then_swap_removes_one(cas: tuple[TestCa, TestCa]) -> None:
    ca_a, ca_b = cas
    both = bundle_set(ca_a, ca_b)
    server_svid = issue_svid(ca_a, "spiffe://a.test/isthmus/gateway/a1")
    client_b = issue_svid(ca_b, "spiffe://b.test/isthmus/gateway/b1")
    creds = TlsCredentials(server_svid, both, alpn=ALPN)
    client_ctx = client_context(client_b, both, ALPN)
    with trio.fail_after(TIMEOUT):
        async with echo_server(lambda: creds.server_context, lambda: creds.bundles) as (port, log):
            established = await connect(port, client_ctx)
            server_id = verify_peer(ssl_object_of(established), both, datetime.now(UTC))
            assert str(server_id) == "spiffe://a.test/isthmus/gateway/a1"
            assert await echo(established, b"before swap") == b"before swap"
            assert log.accepted == [client_b.spiffe_id] and log.alpn == ["h2"]

            creds.update(bundles=both.without(ca_b.trust_domain))

            assert await echo(established, b"after swap") == b"after swap"
            fresh = await connect(port, client_ctx)  # TLS 1.3: the server's verdict comes later
            with pytest.raises(trio.BrokenResourceError):
                await echo(fresh, b"rejected")
            await trio.aclose_forcefully(fresh)
            assert (await log.verdict()).startswith("accepted: spiffe://b.test")
            assert (await log.verdict()).startswith("rejected: openssl")
            assert await echo(established, b"still up") == b"still up"
            await established.aclose()


async def test_cross_domain_identity_passes_openssl_but_not_our_check(
    cas: tuple[TestCa, TestCa],
) -> None:
    ca_a, ca_b = cas
    both = bundle_set(ca_a, ca_b)
    server_svid = issue_svid(ca_a, "spiffe://a.test/isthmus/gateway/a1")
    forged = issue_svid(ca_a, "spiffe://b.test/isthmus/gateway/b1")  # a.test CA, b.test name
    server_ctx = server_context(server_svid, both, ALPN)
    with trio.fail_after(TIMEOUT):
        async with echo_server(lambda: server_ctx, lambda: both) as (port, log):
            stream = await connect(port, client_context(forged, both, ALPN))
            assert await stream.receive_some(1024) == b""  # OpenSSL accepted; we closed it
            await trio.aclose_forcefully(stream)
            assert log.rejected == ["chain-invalid"] and log.accepted == []


async def test_client_rejects_server_with_cross_domain_identity(
    cas: tuple[TestCa, TestCa],
) -> None:
    ca_a, ca_b = cas
    both = bundle_set(ca_a, ca_b)
    forged_server = issue_svid(ca_b, "spiffe://a.test/isthmus/gateway/a1")
    client = issue_svid(ca_a, "spiffe://a.test/ns/x/sa/y")
    server_ctx = server_context(forged_server, both, ALPN)
    with trio.fail_after(TIMEOUT):
        async with echo_server(lambda: server_ctx, lambda: both) as (port, _log):
            stream = await connect(port, client_context(client, both, ALPN))
            with pytest.raises(SvidVerificationError) as info:
                verify_peer(ssl_object_of(stream), both, datetime.now(UTC))
            assert info.value.reason == "chain-invalid"
            await stream.aclose()


async def test_sni_swapper_serves_new_handshakes_from_the_current_context(
    cas: tuple[TestCa, TestCa],
) -> None:
    ca_a, ca_b = cas
    both = bundle_set(ca_a, ca_b)
    old = issue_svid(ca_a, "spiffe://a.test/isthmus/gateway/a1")
    new = issue_svid(ca_a, "spiffe://a.test/isthmus/gateway/a1")
    creds = TlsCredentials(old, both, alpn=ALPN)
    frontdoor = creds.swapping_server_context()  # what hypercorn would keep forever
    client_ctx = client_context(issue_svid(ca_b, "spiffe://b.test/c"), both, ALPN)
    with trio.fail_after(TIMEOUT):
        async with echo_server(lambda: frontdoor, lambda: creds.bundles) as (port, log):
            first = await connect(port, client_ctx, sni="gateway.a.test")
            assert peer_chain(ssl_object_of(first))[0] == old.leaf
            assert await echo(first, b"accepted") == b"accepted"  # the server has verified us
            creds.update(svid=new, bundles=both.without(ca_b.trust_domain))
            second = await connect(port, client_ctx, sni="gateway.a.test")
            assert peer_chain(ssl_object_of(second))[0] == new.leaf
            with pytest.raises(trio.BrokenResourceError):
                await echo(second, b"b.test is no longer trusted")
            await trio.aclose_forcefully(second)
            assert await echo(first, b"old connection") == b"old connection"
            assert (await log.verdict()).startswith("accepted: ")
            await log.verdict()
            assert len(log.accepted) == 1 and len(log.rejected) == 1
            # refused by OpenSSL itself: the swapped-in context's trust store was in force
            assert log.rejected[0].startswith("openssl: [SSL: CERTIFICATE_VERIFY_FAILED]")
            await first.aclose()


def _handshake(sock: ssl.SSLSocket) -> None:
    sock.settimeout(TIMEOUT)
    sock.do_handshake()


@pytest.mark.parametrize("key_transfer", ["memfd", "tempfile"])
async def test_peer_chain_on_stdlib_sockets_includes_intermediates(
    cas: tuple[TestCa, TestCa], key_transfer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if key_transfer == "tempfile":  # the path taken where memfd_create does not exist
        monkeypatch.delattr(os, "memfd_create", raising=False)
    ca_a, ca_b = cas
    both = bundle_set(ca_a, ca_b)
    server_svid: X509Svid = issue_svid(ca_a, "spiffe://a.test/s")
    client_svid = issue_svid(ca_b, "spiffe://b.test/c")  # via b.test's intermediate
    left, right = socket.socketpair()
    server = server_context(server_svid, both, ALPN).wrap_socket(
        left, server_side=True, do_handshake_on_connect=False
    )
    client = client_context(client_svid, both, ALPN).wrap_socket(
        right, do_handshake_on_connect=False
    )
    with server, client:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, _handshake, server)
            nursery.start_soon(trio.to_thread.run_sync, _handshake, client)
        assert peer_chain(server) == list(client_svid.chain)
        assert len(peer_chain(server)) == 2
        assert verify_peer(server, both, datetime.now(UTC)) == client_svid.spiffe_id
        assert verify_peer(client, both, datetime.now(UTC)) == server_svid.spiffe_id
        assert server.version() == "TLSv1.3"
        assert server.context.num_tickets == 0  # no resumption around a rotated bundle
    with client_context(client_svid, both, ALPN).wrap_socket(socket.socket()) as unconnected:
        assert peer_chain(unconnected) == []
