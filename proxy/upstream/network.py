"""Network streams to upstreams: TCP, and mTLS to peer gateways with identity verification.

:func:`wrap_client_tls` is the one place that picks the TLS stream implementation, so
it uses the MemoryBIO pump of :mod:`proxy.tls` (trio's ``SSLStream`` halves bulk throughput).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

import trio

from proxy.errors import ConnectFailure
from proxy.routes.table import Endpoint
from proxy.tls import TLSHandshakeError, TLSStream

ClientContextFor = Callable[[Endpoint], ssl.SSLContext]
VerifyPeer = Callable[[Endpoint, ssl.SSLObject], None]

_HANDSHAKE_ERRORS = (
    TLSHandshakeError,
    trio.TooSlowError,
    ssl.SSLError,
    trio.BrokenResourceError,
    OSError,
)


def describe(endpoint: Endpoint) -> str:
    """``peer gw-b (10.0.0.2:15443)`` — how errors name an endpoint."""
    return f"{endpoint.kind} {endpoint.key} ({endpoint.host}:{endpoint.port})"


async def connect_tcp(endpoint: Endpoint, timeout_s: float) -> trio.SocketStream:
    """A TCP connection (TCP_NODELAY set by trio). Raises :class:`ConnectFailure`."""
    try:
        with trio.fail_after(timeout_s):
            return await trio.open_tcp_stream(endpoint.host, endpoint.port)
    except trio.TooSlowError as err:
        msg = f"connecting to {describe(endpoint)} timed out after {timeout_s} s"
        raise ConnectFailure(msg, endpoint=endpoint.key) from err
    except OSError as err:
        msg = f"cannot connect to {describe(endpoint)}: {err.strerror or err}"
        raise ConnectFailure(msg, endpoint=endpoint.key) from err


async def wrap_client_tls(
    tcp: trio.SocketStream, context: ssl.SSLContext, server_hostname: str
) -> tuple[trio.abc.Stream, ssl.SSLObject]:
    """Client TLS over ``tcp``, handshake done; returns the stream and its SSL object.

    Raises :class:`~proxy.tls.TLSHandshakeError` / :class:`trio.BrokenResourceError` on
    handshake failure (the caller closes ``tcp``).
    """
    stream = TLSStream(tcp, context, server_hostname=server_hostname)
    await stream.do_handshake()
    return stream, stream.ssl_object


async def open_peer_stream(
    endpoint: Endpoint,
    *,
    client_context_for: ClientContextFor,
    verify_peer: VerifyPeer,
    timeout_s: float,
) -> trio.abc.Stream:
    """mTLS to a peer gateway: TCP, TLS handshake, ALPN ``h2``, then ``verify_peer``.

    Nothing is sent on the stream before ``verify_peer`` returns. On any failure the
    connection is closed and :class:`ConnectFailure` raised, naming the peer and, for an
    identity mismatch, the expected identity.
    """
    tcp = await connect_tcp(endpoint, timeout_s)
    try:
        with trio.fail_after(timeout_s):
            stream, ssl_object = await wrap_client_tls(
                tcp, client_context_for(endpoint), endpoint.host
            )
    except BaseException as err:
        await trio.aclose_forcefully(tcp)
        if isinstance(err, _HANDSHAKE_ERRORS):
            msg = f"TLS handshake with {describe(endpoint)} failed: {err}"
            raise ConnectFailure(msg, endpoint=endpoint.key) from err
        raise
    try:
        _check_peer(endpoint, ssl_object, verify_peer)
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return stream


def _check_peer(endpoint: Endpoint, ssl_object: ssl.SSLObject, verify_peer: VerifyPeer) -> None:
    alpn = ssl_object.selected_alpn_protocol()
    if alpn != "h2":
        msg = (
            f"{describe(endpoint)} negotiated ALPN {alpn!r}, not 'h2': "
            "is it an Isthmus gateway inbound port?"
        )
        raise ConnectFailure(msg, endpoint=endpoint.key)
    try:
        verify_peer(endpoint, ssl_object)
    except Exception as err:  # any verifier error means: not the expected peer
        msg = (
            f"{describe(endpoint)} did not present the expected identity "
            f"{endpoint.expected_identity!r}: {err}"
        )
        raise ConnectFailure(msg, endpoint=endpoint.key) from err
