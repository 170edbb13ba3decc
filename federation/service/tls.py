"""The federation's own HTTPS identity: a small CA in its state directory and a server cert.

This is not a SPIFFE trust domain: it only lets gateways reach the federation API privately.
Gateways pin the CA by the SHA-256 fingerprint carried in their join token
(:func:`pinned_client_context`), so no public CA and no trust-on-first-use are involved.
Private keys are written 0600 and never logged.
"""

from __future__ import annotations

import hashlib
import ipaddress
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from federation.service.errors import FederationTlsError
from federation.trust.files import PRIVATE_MODE, PUBLIC_MODE, key_to_pem, write_file

CA_TTL = timedelta(days=3650)
SERVER_TTL = timedelta(days=90)
RENEW_BEFORE = timedelta(days=30)
DEFAULT_HOSTS = ("127.0.0.1", "localhost")


def ca_fingerprint(cert: x509.Certificate) -> str:
    """``sha256:<hex>`` of the certificate's DER encoding."""
    return "sha256:" + hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


@dataclass(frozen=True)
class FederationTls:
    """Paths of the federation's TLS files and the CA fingerprint gateways pin."""

    ca_path: Path
    cert_path: Path
    key_path: Path
    fingerprint: str


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "isthmus federation"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(hosts: tuple[str, ...]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _new_ca(now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("isthmus federation CA"))
        .issuer_name(_name("isthmus federation CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + CA_TTL)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _new_server_cert(
    ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, hosts: tuple[str, ...], now: datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("isthmus federation"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(min(now + SERVER_TTL, ca.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(_san(hosts), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    ca_path, key_path = directory / "ca.pem", directory / "ca.key"
    if not ca_path.exists():
        return None
    try:
        cert = x509.load_pem_x509_certificate(ca_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError) as err:
        raise FederationTlsError(
            f"{directory}: cannot load the federation TLS CA ({err}); remove the directory "
            "to create a new one (every gateway must then re-join)"
        ) from err
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise FederationTlsError(f"{key_path}: expected an EC private key")
    return cert, key


def _server_cert_fresh(path: Path, hosts: tuple[str, ...], now: datetime) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return False
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return cert.not_valid_after_utc - now > RENEW_BEFORE and set(san) == set(_san(hosts))


def ensure_federation_tls(
    directory: Path, *, now: datetime | None = None, hosts: tuple[str, ...] = DEFAULT_HOSTS
) -> FederationTls:
    """Create (or keep) the CA and a server certificate for ``hosts`` under ``directory``.

    The CA is created once and kept: its fingerprint is in every join token. The server
    certificate is reissued when it nears expiry or the host list changed.
    """
    now = now or datetime.now(UTC)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    loaded = _load_ca(directory)
    if loaded is None:
        ca, ca_key = _new_ca(now)
        write_file(directory / "ca.key", key_to_pem(ca_key), mode=PRIVATE_MODE)
        write_file(
            directory / "ca.pem", ca.public_bytes(serialization.Encoding.PEM), mode=PUBLIC_MODE
        )
    else:
        ca, ca_key = loaded
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    if not _server_cert_fresh(cert_path, hosts, now) or not key_path.exists():
        cert, key = _new_server_cert(ca, ca_key, hosts, now)
        write_file(key_path, key_to_pem(key), mode=PRIVATE_MODE)
        chain = cert.public_bytes(serialization.Encoding.PEM)
        write_file(cert_path, chain, mode=PUBLIC_MODE)
    return FederationTls(directory / "ca.pem", cert_path, key_path, ca_fingerprint(ca))


def pinned_client_context(ca_pem: bytes, fingerprint: str) -> ssl.SSLContext:
    """A TLS 1.3 client context trusting exactly the CA in ``ca_pem``, after checking that its
    fingerprint is ``fingerprint``. Raise :class:`FederationTlsError` on any mismatch."""
    try:
        cert = x509.load_pem_x509_certificate(ca_pem)
    except ValueError as err:
        raise FederationTlsError("the federation's CA certificate is not valid PEM") from err
    actual = ca_fingerprint(cert)
    if actual.lower() != fingerprint.lower():
        raise FederationTlsError(
            f"the federation presented CA {actual}, but the join token pins {fingerprint}: "
            "wrong federation URL, or someone is intercepting the connection",
            reason="fingerprint-mismatch",
        )
    # Not create_default_context(): that would also trust the system's public CAs.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_verify_locations(cadata=cert.public_bytes(serialization.Encoding.PEM).decode())
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context
