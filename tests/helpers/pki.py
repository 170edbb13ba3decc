"""Certificate and bundle factories for tests: real keys, real certificates, knobs for bad cases.

The factories build certificates with ``cryptography`` directly (not through
:mod:`federation.trust`), so tests check our code against independently made material and can
make certificates our issuer would refuse to make.

    ca = make_ca("a.test")                          # root CA, valid around now
    mid = make_ca("a.test", intermediate=True)      # root + intermediate; SVIDs carry the mid
    svid = issue_svid(ca, "spiffe://a.test/x")      # a good X509Svid
    bad = issue_svid(ca, "spiffe://a.test/x", is_ca=True)
    bundles = bundle_set(ca, other_ca)              # BundleSet, one bundle per CA's domain
    creds = tls_credentials(ca, "spiffe://a.test/isthmus/gateway/a1", other_ca)  # mTLS, ALPN h2
    signer = make_ca("a.test", jwt_kid="k1")        # bundle() also holds a jwt-svid key "k1"
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from federation.trust import (
    BundleSet,
    CertificateAuthority,
    SpiffeId,
    TlsCredentials,
    TrustBundle,
    TrustDomain,
    X509Svid,
)

SVID_EKUS = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_usage(*, sign: bool, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def build_cert(
    *,
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    not_before: datetime,
    not_after: datetime,
    is_ca: bool,
    uris: Sequence[str] = (),
    key_cert_sign: bool | None = None,
    ekus: Sequence[x509.ObjectIdentifier] | None = SVID_EKUS,
    path_length: int | None = None,
) -> x509.Certificate:
    """One certificate with every knob exposed; ``issuer=None`` makes it self-signed."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject[:64])])
    cert_sign = is_ca if key_cert_sign is None else key_cert_sign
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer is not None else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.BasicConstraints(ca=is_ca, path_length=path_length if is_ca else None), True
        )
        .add_extension(_key_usage(sign=not is_ca, cert_sign=cert_sign), True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    )
    if uris:
        san = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris])
        builder = builder.add_extension(san, False)
    if ekus is not None and not is_ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(ekus)), False)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True)
class TestCa:
    """A CA made by :func:`make_ca`: certificates and keys in the open, for tests only."""

    __test__ = False  # not a pytest test class

    trust_domain: TrustDomain
    root: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    intermediate: x509.Certificate | None = None
    intermediate_key: ec.EllipticCurvePrivateKey | None = None
    jwt_kid: str | None = None
    jwt_key: ec.EllipticCurvePrivateKey | None = None

    @property
    def issuer(self) -> x509.Certificate:
        return self.intermediate if self.intermediate is not None else self.root

    @property
    def issuer_key(self) -> ec.EllipticCurvePrivateKey:
        return self.intermediate_key if self.intermediate_key is not None else self.root_key

    def bundle(self, *, sequence: int = 1, refresh_hint_s: int | None = 300) -> TrustBundle:
        """The CA's bundle: its root, plus its jwt-svid key when made with ``jwt_kid``."""
        jwt = {}
        if self.jwt_kid is not None and self.jwt_key is not None:
            jwt[self.jwt_kid] = self.jwt_key.public_key()
        return TrustBundle(self.trust_domain, (self.root,), jwt, sequence, refresh_hint_s)

    def authority(self) -> CertificateAuthority:
        """The same CA as our production type (e.g. to ``.save()`` it for CLI tests)."""
        return CertificateAuthority(
            self.trust_domain, self.root, self.issuer_key, self.intermediate, self.root_key
        )


def make_ca(
    trust_domain: str | TrustDomain,
    *,
    intermediate: bool = False,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    uri_san: bool = True,
    jwt_kid: str | None = None,
) -> TestCa:
    """A root CA (plus an intermediate) for ``trust_domain``, valid by default from an hour ago
    for a day. ``uri_san=False`` leaves out the ``spiffe://<td>`` URI SAN (non-SPIRE CAs).
    ``jwt_kid`` adds a P-256 JWT/bundle-signing key published in :meth:`TestCa.bundle`."""
    td = trust_domain if isinstance(trust_domain, TrustDomain) else TrustDomain(trust_domain)
    now = utcnow()
    nb = not_before if not_before is not None else now - timedelta(hours=1)
    na = not_after if not_after is not None else now + timedelta(days=1)
    uris = [f"spiffe://{td}"] if uri_san else []
    root_key = _key()
    root = build_cert(
        subject=f"{td} root",
        key=root_key,
        issuer=None,
        issuer_key=root_key,
        not_before=nb,
        not_after=na,
        is_ca=True,
        uris=uris,
        path_length=1 if intermediate else 0,
    )
    jwt_key = _key() if jwt_kid is not None else None
    if not intermediate:
        return TestCa(td, root, root_key, None, None, jwt_kid, jwt_key)
    mid_key = _key()
    mid = build_cert(
        subject=f"{td} intermediate",
        key=mid_key,
        issuer=root,
        issuer_key=root_key,
        not_before=nb,
        not_after=na,
        is_ca=True,
        uris=uris,
        path_length=0,
    )
    return TestCa(td, root, root_key, mid, mid_key, jwt_kid, jwt_key)


def issue_svid(
    ca: TestCa,
    spiffe_id: str | SpiffeId,
    *,
    uris: Sequence[str] | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    is_ca: bool = False,
    key_cert_sign: bool = False,
    ekus: Sequence[x509.ObjectIdentifier] | None = SVID_EKUS,
    self_signed: bool = False,
    with_intermediates: bool = True,
) -> X509Svid:
    """An SVID for ``spiffe_id`` signed by ``ca`` (whatever its trust domain: the cross-domain
    case is a knob, not a refusal). ``uris`` overrides the URI SANs (``[]`` for none, two for
    two, ``["https://x"]`` for a non-spiffe one); the returned ``spiffe_id`` is what was asked.
    Validity defaults to from 5 minutes ago for an hour."""
    sid = spiffe_id if isinstance(spiffe_id, SpiffeId) else SpiffeId.parse(spiffe_id)
    now = utcnow()
    key = _key()
    leaf = build_cert(
        subject="svid",
        key=key,
        issuer=None if self_signed else ca.issuer,
        issuer_key=key if self_signed else ca.issuer_key,
        not_before=not_before if not_before is not None else now - timedelta(minutes=5),
        not_after=not_after if not_after is not None else now + timedelta(hours=1),
        is_ca=is_ca,
        uris=[str(sid)] if uris is None else uris,
        key_cert_sign=key_cert_sign or is_ca,
        ekus=ekus,
    )
    rest = (ca.intermediate,) if ca.intermediate is not None and with_intermediates else ()
    chain = (leaf,) if self_signed else (leaf, *rest)
    return X509Svid(sid, chain, key)


def bundle_set(*cas: TestCa) -> BundleSet:
    """One bundle per CA (the CAs must be of different trust domains)."""
    return BundleSet(ca.bundle() for ca in cas)


def tls_credentials(
    ca: TestCa, spiffe_id: str | SpiffeId, *trusted: TestCa, alpn: Sequence[str] = ("h2",)
) -> TlsCredentials:
    """mTLS credentials for ``spiffe_id`` issued by ``ca``, trusting ``ca`` and ``trusted``."""
    return TlsCredentials(issue_svid(ca, spiffe_id), bundle_set(ca, *trusted), alpn=alpn)


def write_ca(ca: TestCa, directory: Path) -> Path:
    """Save ``ca`` like ``isthmus ca init`` does; returns the directory."""
    ca.authority().save(directory)
    return directory
