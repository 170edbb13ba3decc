"""The API's transport: TLS 1.3 only, HTTP/2 by ALPN, private files 0600."""

from __future__ import annotations

import ssl
import stat

import pytest
import trio

from federation.service import pinned_client_context
from federation.service.server import RunningFederation


async def handshake(
    fed: RunningFederation, context: ssl.SSLContext
) -> trio.SSLStream[trio.SocketStream]:
    port = int(fed.url.rsplit(":", 1)[1])
    raw = await trio.open_tcp_stream("127.0.0.1", port)
    stream = trio.SSLStream(raw, context, server_hostname="127.0.0.1")
    await stream.do_handshake()
    return stream


async def test_tls13_with_h2_is_negotiated(federation: RunningFederation) -> None:
    stream = await handshake(
        federation, pinned_client_context(federation.ca_pem, federation.ca_fingerprint)
    )
    assert stream.version() == "TLSv1.3"
    assert stream.selected_alpn_protocol() == "h2"
    await stream.aclose()


async def test_tls12_clients_are_refused(federation: RunningFederation) -> None:
    context = pinned_client_context(federation.ca_pem, federation.ca_fingerprint)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises((trio.BrokenResourceError, ssl.SSLError)):
        await handshake(federation, context)


async def test_private_files_are_0600(federation: RunningFederation) -> None:
    for path in (
        federation.state_dir / "admin.token",
        federation.state_dir / "tls" / "ca.key",
        federation.state_dir / "tls" / "server.key",
    ):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
