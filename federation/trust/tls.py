"""mTLS contexts for SVIDs, the mandatory post-handshake SPIFFE check, and context rotation.

OpenSSL's trust store is the union of every federated bundle, so OpenSSL alone would accept a
``td-b`` identity signed by ``td-a``'s CA. Every connection must therefore call
:func:`verify_peer` right after the handshake: it re-verifies the peer chain against the bundle
of the trust domain named in the peer's own SPIFFE ID.

Contexts are never mutated after they are built. Rotation builds new contexts and swaps one
reference (:class:`TlsCredentials`); established connections keep the context they started with.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import ssl
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import trio
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from federation.trust.bundle import BundleSet, TrustBundle
from federation.trust.files import PRIVATE_MODE, certs_to_pem
from federation.trust.spiffeid import SpiffeId, TrustDomain
from federation.trust.svid import X509Svid
from federation.trust.verify import verify_x509_svid

Bundles = Mapping[TrustDomain, TrustBundle]
TlsConnection = ssl.SSLSocket | ssl.SSLObject


@contextlib.contextmanager
def _transient_file(data: bytes) -> Iterator[str]:
    """A path OpenSSL can open, holding ``data``, gone when the block exits.

    On Linux an anonymous memory file (``memfd``) reached through ``/proc/self/fd``: nothing
    touches the disk. Elsewhere a 0600 file in a private temporary directory.
    """
    if hasattr(os, "memfd_create") and Path("/proc/self/fd").is_dir():
        fd = os.memfd_create("isthmus-tls", os.MFD_CLOEXEC)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="isthmus-tls-") as tmp:
        path = Path(tmp) / "blob.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        yield str(path)


def _load_svid(ctx: ssl.SSLContext, svid: X509Svid) -> None:
    # ssl can only load a certificate chain and key from paths. The key is handed over
    # encrypted with a one-time password, through a transient in-memory file where possible.
    password = secrets.token_bytes(32)
    key_pem = svid.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    )
    with _transient_file(svid.chain_pem()) as chain_path, _transient_file(key_pem) as key_path:
        ctx.load_cert_chain(chain_path, key_path, password=password)


def _configure(ctx: ssl.SSLContext, svid: X509Svid, bundles: Bundles, alpn: Sequence[str]) -> None:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    roots = BundleSet(bundles.values()).x509_roots()
    if roots:
        ctx.load_verify_locations(cadata=certs_to_pem(roots).decode())
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    _load_svid(ctx, svid)


def server_context(svid: X509Svid, bundles: Bundles, alpn: Sequence[str]) -> ssl.SSLContext:
    """A TLS 1.3-only server context presenting ``svid`` and requiring a client certificate
    that chains to one of ``bundles``. Callers must still run :func:`verify_peer`."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _configure(ctx, svid, bundles, alpn)
    # No session tickets: a resumed session skips the client certificate, so it would bypass a
    # bundle rotation and leave verify_peer nothing to check.
    ctx.num_tickets = 0
    return ctx


def client_context(svid: X509Svid, bundles: Bundles, alpn: Sequence[str]) -> ssl.SSLContext:
    """A TLS 1.3-only client context presenting ``svid``. SPIFFE identities are not host
    names, so hostname checking is off; :func:`verify_peer` checks the identity instead."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    _configure(ctx, svid, bundles, alpn)
    return ctx


def peer_chain(conn: TlsConnection) -> list[x509.Certificate]:
    """The certificates the peer sent, leaf first, for an ``SSLSocket`` or ``SSLObject``.

    Python 3.13 made ``get_unverified_chain()`` public (returning DER bytes). On 3.11/3.12 the
    same method exists only on the private C object ``_sslobj`` (returning ``_ssl.Certificate``),
    which both ``SSLSocket`` and the MemoryBIO ``SSLObject`` hold. This is the only place that
    touches it. Returns ``[]`` before the handshake or when the peer sent no certificate.
    """
    getter = getattr(conn, "get_unverified_chain", None)
    if getter is None:
        inner = getattr(conn, "_sslobj", None)  # None on an SSLSocket that never connected
        if inner is None:
            return []
        getter = inner.get_unverified_chain
    raw: list[Any] | None = getter()
    chain = []
    for item in raw or []:
        der = item if isinstance(item, bytes) else item.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
        chain.append(x509.load_der_x509_certificate(der))
    return chain


def verify_peer(conn: TlsConnection, bundles: Bundles, now: datetime) -> SpiffeId:
    """The mandatory post-handshake check: the peer's verified SPIFFE ID, or
    :class:`~federation.trust.errors.SvidVerificationError`. The caller closes the connection
    on error."""
    return verify_x509_svid(peer_chain(conn), bundles, now)


def ssl_object_of(stream: trio.SSLStream[Any]) -> ssl.SSLObject:
    """The ``SSLObject`` inside a trio ``SSLStream`` (trio forwards only a few of its methods,
    not the chain accessor), for :func:`verify_peer`."""
    obj: ssl.SSLObject = stream._ssl_object
    return obj


SniCallback = Callable[[ssl.SSLObject, str | None, ssl.SSLContext], None]


def sni_swapper(current: Callable[[], ssl.SSLContext]) -> SniCallback:
    """An ``sni_callback`` that moves each new server connection onto ``current()``.

    For servers whose framework builds the listening context (hypercorn): install this on that
    context once; every later handshake then uses the newest context without rebuilding the
    listener. Connections already established are untouched.
    """

    def swap(conn: ssl.SSLObject, _server_name: str | None, _ctx: ssl.SSLContext) -> None:
        conn.context = current()

    return swap


@dataclass(frozen=True)
class _Material:
    svid: X509Svid
    bundles: BundleSet
    server: ssl.SSLContext
    client: ssl.SSLContext


class TlsCredentials:
    """The current SVID, bundles and the contexts built from them, swapped as one reference.

    Readers take :attr:`server_context` / :attr:`client_context` for each new connection and
    :attr:`bundles` for its :func:`verify_peer` check. :meth:`update` builds new contexts first
    and then swaps, so a failure leaves the old material in place.
    """

    def __init__(self, svid: X509Svid, bundles: Bundles, *, alpn: Sequence[str]) -> None:
        self._alpn = tuple(alpn)
        self._material = self._build(svid, BundleSet(bundles.values()))

    def _build(self, svid: X509Svid, bundles: BundleSet) -> _Material:
        return _Material(
            svid,
            bundles,
            server_context(svid, bundles, self._alpn),
            client_context(svid, bundles, self._alpn),
        )

    @property
    def svid(self) -> X509Svid:
        return self._material.svid

    @property
    def bundles(self) -> BundleSet:
        return self._material.bundles

    @property
    def server_context(self) -> ssl.SSLContext:
        return self._material.server

    @property
    def client_context(self) -> ssl.SSLContext:
        return self._material.client

    def update(self, *, svid: X509Svid | None = None, bundles: Bundles | None = None) -> None:
        """Rebuild the contexts with a new SVID and/or bundles and swap them in."""
        new_svid = svid if svid is not None else self.svid
        new_bundles = BundleSet(bundles.values()) if bundles is not None else self.bundles
        self._material = self._build(new_svid, new_bundles)

    def swapping_server_context(self) -> ssl.SSLContext:
        """A server context for a framework that keeps its context forever: its
        ``sni_callback`` moves every handshake onto the then-current :attr:`server_context`."""
        ctx = server_context(self.svid, self.bundles, self._alpn)
        ctx.sni_callback = sni_swapper(lambda: self.server_context)
        return ctx
