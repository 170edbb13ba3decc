"""The MemoryBIO TLS stream against real handshakes on 127.0.0.1."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Awaitable, Callable

import pytest
import trio

from proxy.tls import TLSHandshakeError, TLSStream, open_tls_stream
from tests.integration.proxy.certs import CA, Leaf, client_context, server_context

Handler = Callable[[TLSStream], Awaitable[None]]


async def _serve_one(
    nursery: trio.Nursery, ctx_pki: tuple[CA, Leaf, Leaf], handler: Handler
) -> int:
    ca, server_leaf, _ = ctx_pki
    ctx = server_context(ca, server_leaf)
    listener = trio.socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    await listener.bind(("127.0.0.1", 0))
    listener.listen()
    port: int = listener.getsockname()[1]

    async def run() -> None:
        with listener:
            sock, _ = await listener.accept()
        stream = TLSStream(trio.SocketStream(sock), ctx, server_side=True)
        async with stream:
            await handler(stream)

    nursery.start_soon(run)
    return port


async def test_handshake_exposes_alpn_and_peer_identity(pki: tuple[CA, Leaf, Leaf]) -> None:
    ca, _, client_leaf = pki
    seen: list[str] = []

    async def handler(stream: TLSStream) -> None:
        await stream.do_handshake()
        seen.append(stream.ssl_object.selected_alpn_protocol() or "")
        cert = stream.ssl_object.getpeercert()
        assert cert is not None
        seen.extend(v for k, v in cert["subjectAltName"] if k == "URI")
        await stream.send_all(b"hello")

    async with trio.open_nursery() as nursery:
        port = await _serve_one(nursery, pki, handler)
        client = await open_tls_stream(
            "127.0.0.1", port, client_context(ca, client_leaf), server_hostname="localhost"
        )
        async with client:
            assert client.ssl_object.version() == "TLSv1.3"
            assert await client.receive_some() == b"hello"
            assert await client.receive_some() == b""
    assert seen == ["h2", "spiffe://a.test/isthmus/gateway/a"]


@pytest.mark.parametrize("direction", ["upload", "download"])
async def test_bulk_transfer_is_intact(pki: tuple[CA, Leaf, Leaf], direction: str) -> None:
    """64 MiB in 1 MiB writes arrives byte-for-byte (checksummed), then a clean EOF."""
    ca, _, client_leaf = pki
    chunk = bytes(range(256)) * 4096
    total = 64 * len(chunk)
    expected = hashlib.sha256(chunk * 64).hexdigest()
    digests: list[str] = []

    async def sink(stream: trio.abc.Stream) -> None:
        digest = hashlib.sha256()
        received = 0
        while data := await stream.receive_some():
            digest.update(data)
            received += len(data)
        assert received == total
        digests.append(digest.hexdigest())

    async def source(stream: trio.abc.Stream) -> None:
        for _ in range(64):
            await stream.send_all(chunk)
        await stream.send_eof()

    async def handler(stream: TLSStream) -> None:
        await (sink(stream) if direction == "upload" else source(stream))
        if direction == "upload":
            await stream.send_all(b"done")

    async with trio.open_nursery() as nursery:
        port = await _serve_one(nursery, pki, handler)
        with trio.fail_after(30):
            client = await open_tls_stream(
                "127.0.0.1", port, client_context(ca, client_leaf), server_hostname="localhost"
            )
            async with client:
                if direction == "upload":
                    await source(client)
                    assert await client.receive_some() == b"done"
                else:
                    await sink(client)
    assert digests == [expected]


async def test_half_close_lets_the_peer_answer_after_eof(pki: tuple[CA, Leaf, Leaf]) -> None:
    ca, _, client_leaf = pki

    async def handler(stream: TLSStream) -> None:
        request = b""
        while data := await stream.receive_some():
            request += data
        await stream.send_all(b"echo:" + request)

    async with trio.open_nursery() as nursery:
        port = await _serve_one(nursery, pki, handler)
        with trio.fail_after(10):
            client = await open_tls_stream(
                "127.0.0.1", port, client_context(ca, client_leaf), server_hostname="localhost"
            )
            async with client:
                await client.send_all(b"ping")
                await client.send_eof()
                with pytest.raises(trio.ClosedResourceError):
                    await client.send_all(b"more")
                reply = b""
                while data := await client.receive_some():
                    reply += data
    assert reply == b"echo:ping"


async def test_client_without_certificate_fails_the_handshake(
    pki: tuple[CA, Leaf, Leaf],
) -> None:
    ca, _, _ = pki
    errors: list[BaseException] = []

    async def handler(stream: TLSStream) -> None:
        try:
            await stream.do_handshake()
            await stream.receive_some()
        except (TLSHandshakeError, trio.BrokenResourceError) as err:
            errors.append(err)

    async with trio.open_nursery() as nursery:
        port = await _serve_one(nursery, pki, handler)
        with trio.fail_after(10):
            client = await open_tls_stream(
                "127.0.0.1", port, client_context(ca, None), server_hostname="localhost"
            )
            async with client:
                # TLS 1.3 reports the missing client certificate after the client finishes.
                with pytest.raises(trio.BrokenResourceError):
                    await client.receive_some()
    assert len(errors) == 1


async def test_tcp_close_without_close_notify_is_a_broken_stream(
    pki: tuple[CA, Leaf, Leaf],
) -> None:
    ca, _, client_leaf = pki

    async def handler(stream: TLSStream) -> None:
        await stream.do_handshake()
        await stream.send_all(b"partial")
        await stream.transport_stream.aclose()

    async with trio.open_nursery() as nursery:
        port = await _serve_one(nursery, pki, handler)
        with trio.fail_after(10):
            client = await open_tls_stream(
                "127.0.0.1", port, client_context(ca, client_leaf), server_hostname="localhost"
            )
            async with client:
                assert await client.receive_some() == b"partial"
                with pytest.raises(trio.BrokenResourceError):
                    await client.receive_some()


async def test_send_nowait_keeps_order_with_send_all(pki: tuple[CA, Leaf, Leaf]) -> None:
    """Pieces written without waiting (what the kernel did not take is flushed by the next
    ``send_all``) arrive intact and in order, followed by what ``send_all`` sends."""
    ca, _, client_leaf = pki
    pieces = [bytes([i]) * (i * 50_000 + 9) for i in range(1, 40)]
    expected = hashlib.sha256(b"".join(pieces) + b"tail").hexdigest()
    digests: list[str] = []
    done = trio.Event()

    async def sink(stream: TLSStream) -> None:
        digest = hashlib.sha256()
        while data := await stream.receive_some():
            digest.update(data)
        digests.append(digest.hexdigest())
        done.set()

    async with trio.open_nursery() as nursery:
        port = await _serve_one(nursery, pki, sink)
        client = await open_tls_stream(
            "127.0.0.1", port, client_context(ca, client_leaf), server_hostname="localhost"
        )
        async with client:
            flushes = 0
            for piece in pieces:
                assert client.send_ready
                left = client.send_nowait([piece[:9], memoryview(piece)[9:]])
                assert left is not None
                assert client.output_pending == (left > 0)
                if left:
                    flushes += 1
                    await client.send_all(b"")
            assert flushes > 0, "the kernel took everything: the leftover path was not tested"
            await client.send_all(b"tail")
            await client.send_eof()
            await done.wait()
    assert digests == [expected]
