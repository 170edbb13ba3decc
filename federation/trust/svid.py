"""X.509-SVID issuance and storage, per the SPIFFE X509-SVID specification.

A leaf carries exactly one URI SAN (its SPIFFE ID), basicConstraints CA:false, keyUsage
digitalSignature (plus keyEncipherment for RSA keys), EKU serverAuth + clientAuth and
subject/authority key identifiers. Its lifetime defaults to one hour and never outlives the
issuing CA. On disk: ``svid.pem`` (leaf, then intermediates) and ``svid.key`` (0600).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from federation.trust.ca import BACKDATE, CertificateAuthority
from federation.trust.errors import SvidError
from federation.trust.files import (
    PRIVATE_MODE,
    PUBLIC_MODE,
    SigningKey,
    certs_from_pem,
    certs_to_pem,
    key_from_pem,
    key_to_pem,
    write_file,
)
from federation.trust.spiffeid import SpiffeId

DEFAULT_SVID_TTL = timedelta(hours=1)


@dataclass(frozen=True, repr=False)
class X509Svid:
    """A SPIFFE identity document: ``chain`` is leaf-first and includes intermediates (not the
    root). ``private_key`` belongs to the leaf and never appears in ``repr``."""

    spiffe_id: SpiffeId
    chain: tuple[x509.Certificate, ...]
    private_key: SigningKey = field(compare=False)

    def __post_init__(self) -> None:
        if not self.chain:
            raise SvidError(f"SVID {self.spiffe_id}: empty certificate chain")
        object.__setattr__(self, "chain", tuple(self.chain))

    def __repr__(self) -> str:
        return f"X509Svid({self.spiffe_id}, not_after={self.not_after.isoformat()})"

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]

    @property
    def not_before(self) -> datetime:
        return self.leaf.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        return self.leaf.not_valid_after_utc

    def chain_pem(self) -> bytes:
        return certs_to_pem(self.chain)

    def key_pem(self) -> bytes:
        """The unencrypted PKCS#8 key: write it only with mode 0600."""
        return key_to_pem(self.private_key)

    def save(self, directory: Path) -> None:
        """Write ``svid.pem`` and ``svid.key`` (0600, never looser even briefly)."""
        write_file(directory / "svid.key", self.key_pem(), mode=PRIVATE_MODE)
        write_file(directory / "svid.pem", self.chain_pem(), mode=PUBLIC_MODE)

    @classmethod
    def from_pem(cls, chain_pem: bytes, key_pem: bytes, *, source: str = "SVID") -> X509Svid:
        """Parse a chain and key; the leaf must carry exactly one spiffe:// URI SAN."""
        try:
            chain = certs_from_pem(chain_pem)
            key = key_from_pem(key_pem)
        except ValueError as err:
            raise SvidError(f"{source}: unreadable PEM: {err}") from err
        if chain[0].public_key() != key.public_key():
            raise SvidError(f"{source}: the private key does not belong to the leaf certificate")
        return cls(spiffe_id_of_leaf(chain[0], source=source), tuple(chain), key)

    @classmethod
    def load(cls, directory: Path) -> X509Svid:
        try:
            chain_pem = (directory / "svid.pem").read_bytes()
            key_pem = (directory / "svid.key").read_bytes()
        except OSError as err:
            raise SvidError(f"{err.filename}: cannot read SVID: {err.strerror}") from err
        return cls.from_pem(chain_pem, key_pem, source=str(directory))


def spiffe_id_of_leaf(cert: x509.Certificate, *, source: str = "certificate") -> SpiffeId:
    """The single URI SAN of a leaf as a SPIFFE ID; :class:`SvidError` if there isn't one."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as err:
        raise SvidError(f"{source}: leaf has no subjectAltName") from err
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise SvidError(f"{source}: leaf must have exactly one URI SAN, has {len(uris)}")
    return SpiffeId.parse(uris[0])


def _leaf_key_usage(key: SigningKey) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=isinstance(key, rsa.RSAPrivateKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def issue_x509_svid(
    ca: CertificateAuthority,
    spiffe_id: SpiffeId,
    *,
    now: datetime,
    ttl: timedelta = DEFAULT_SVID_TTL,
    private_key: SigningKey | None = None,
) -> X509Svid:
    """Issue an SVID for ``spiffe_id`` signed by ``ca``'s issuer, valid from ``now`` for ``ttl``
    but never past the CA's own expiry. A fresh P-256 key is generated unless one is given.

    Raises :class:`SvidError` if the ID is of another trust domain or the CA has expired.
    """
    if spiffe_id.trust_domain != ca.trust_domain:
        raise SvidError(
            f"cannot issue {spiffe_id}: the CA is for trust domain {ca.trust_domain}, "
            f"not {spiffe_id.trust_domain}"
        )
    if ttl <= timedelta(0):
        raise SvidError(f"cannot issue {spiffe_id}: ttl must be positive, got {ttl}")
    not_after = min(now + ttl, ca.not_after)
    if not_after <= now:
        raise SvidError(f"cannot issue {spiffe_id}: the CA expired at {ca.not_after.isoformat()}")
    key = private_key if private_key is not None else ec.generate_private_key(ec.SECP256R1())
    issuer = ca.issuer
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "isthmus")]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(max(now - BACKDATE, issuer.not_valid_before_utc))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_key_usage(key), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.signing_key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(str(spiffe_id))]),
            critical=False,
        )
        .sign(ca.signing_key, hashes.SHA256())
    )
    return X509Svid(spiffe_id, (cert, *ca.issuing_chain), key)
