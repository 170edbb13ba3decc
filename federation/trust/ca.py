"""A per-trust-domain certificate authority: a root and an optional intermediate.

Keys are ECDSA P-256. CA certificates carry the trust domain as URI SAN ``spiffe://<td>``,
basicConstraints CA:true (critical, with a path length), keyUsage keyCertSign + cRLSign
(critical) and subject/authority key identifiers.

On disk (:meth:`CertificateAuthority.save`): ``ca.pem`` is the issuing chain (intermediate
first when there is one, then the root); ``ca.key`` is the issuing key (0600); ``root.key`` holds
the root key when an intermediate issues (0600); ``bundle.json`` is the trust bundle (the root).
Keys never appear in ``repr`` or logs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from federation.trust.bundle import TrustBundle, trust_domain_of_ca
from federation.trust.errors import CertificateAuthorityError
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
from federation.trust.spiffeid import TrustDomain

DEFAULT_CA_TTL = timedelta(days=365)
#: Certificates start slightly in the past so a peer whose clock lags a little accepts them.
BACKDATE = timedelta(seconds=60)
CA_FILES = ("ca.pem", "ca.key", "bundle.json")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "isthmus"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
        ]
    )


def build_ca_certificate(
    trust_domain: TrustDomain,
    *,
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Certificate | None,
    issuer_key: SigningKey,
    not_before: datetime,
    not_after: datetime,
    path_length: int,
) -> x509.Certificate:
    """Sign a CA certificate (self-signed when ``issuer`` is None) with the SPIFFE CA profile."""
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
    if issuer is None:
        issuer_name = subject
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    else:
        issuer_name = issuer.subject
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(aki, critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(str(trust_domain.id))]),
            critical=False,
        )
    )
    return builder.sign(issuer_key, hashes.SHA256())


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True, repr=False)
class CertificateAuthority:
    """The CA of one trust domain. ``signing_key`` belongs to ``issuer`` (the intermediate when
    there is one, else the root). ``root_key`` is None when the CA was loaded without it."""

    trust_domain: TrustDomain
    root: x509.Certificate
    signing_key: SigningKey = field(compare=False)
    intermediate: x509.Certificate | None = None
    root_key: SigningKey | None = field(default=None, compare=False)

    def __repr__(self) -> str:
        mid = ", intermediate" if self.intermediate is not None else ""
        return (
            f"CertificateAuthority({self.trust_domain}{mid}, "
            f"not_after={self.not_after.isoformat()})"
        )

    @property
    def issuer(self) -> x509.Certificate:
        """The certificate that signs SVIDs."""
        return self.intermediate if self.intermediate is not None else self.root

    @property
    def issuing_chain(self) -> tuple[x509.Certificate, ...]:
        """Certificates an SVID carries after its leaf: the intermediate, if any (never the
        root: peers have it in their bundle)."""
        return (self.intermediate,) if self.intermediate is not None else ()

    @property
    def not_after(self) -> datetime:
        return min(self.root.not_valid_after_utc, self.issuer.not_valid_after_utc)

    def bundle(self, *, sequence: int = 1, refresh_hint_s: int | None = 300) -> TrustBundle:
        """A trust bundle holding this CA's root."""
        return TrustBundle(self.trust_domain, (self.root,), {}, sequence, refresh_hint_s)

    @classmethod
    def create(
        cls,
        trust_domain: TrustDomain,
        *,
        now: datetime,
        ttl: timedelta = DEFAULT_CA_TTL,
        intermediate: bool = False,
    ) -> CertificateAuthority:
        """Generate fresh P-256 keys and certificates valid from ``now`` for ``ttl``."""
        not_before, not_after = now - BACKDATE, now + ttl
        root_key = ec.generate_private_key(ec.SECP256R1())
        root = build_ca_certificate(
            trust_domain,
            subject=_name(f"{trust_domain} root CA"),
            public_key=root_key.public_key(),
            issuer=None,
            issuer_key=root_key,
            not_before=not_before,
            not_after=not_after,
            path_length=1 if intermediate else 0,
        )
        if not intermediate:
            return cls(trust_domain, root, root_key, None, root_key)
        mid_key = ec.generate_private_key(ec.SECP256R1())
        mid = build_ca_certificate(
            trust_domain,
            subject=_name(f"{trust_domain} intermediate CA"),
            public_key=mid_key.public_key(),
            issuer=root,
            issuer_key=root_key,
            not_before=not_before,
            not_after=not_after,
            path_length=0,
        )
        return cls(trust_domain, root, mid_key, mid, root_key)

    def save(self, directory: Path, *, force: bool = False) -> None:
        """Write ``ca.pem``, ``ca.key`` (0600), ``bundle.json`` (and ``root.key`` with an
        intermediate). Refuse with :class:`CertificateAuthorityError` if a CA exists there,
        unless ``force``."""
        existing = [name for name in CA_FILES if (directory / name).exists()]
        if existing and not force:
            raise CertificateAuthorityError(
                f"{directory}: a CA already exists ({', '.join(existing)}); "
                "use --force to overwrite it"
            )
        write_file(directory / "ca.key", key_to_pem(self.signing_key), mode=PRIVATE_MODE)
        if self.intermediate is not None and self.root_key is not None:
            write_file(directory / "root.key", key_to_pem(self.root_key), mode=PRIVATE_MODE)
        chain = [*self.issuing_chain, self.root]
        write_file(directory / "ca.pem", certs_to_pem(chain), mode=PUBLIC_MODE)
        self.bundle().save(directory / "bundle.json")

    @classmethod
    def load(cls, directory: Path) -> CertificateAuthority:
        """Read a CA written by :meth:`save`; errors name the file."""
        try:
            chain = certs_from_pem((directory / "ca.pem").read_bytes())
            key = key_from_pem((directory / "ca.key").read_bytes())
        except OSError as err:
            raise CertificateAuthorityError(
                f"{directory}: cannot read the CA ({err.filename}: {err.strerror}); "
                "create one with 'isthmus ca init'"
            ) from err
        except ValueError as err:
            raise CertificateAuthorityError(f"{directory}: unreadable CA files: {err}") from err
        root, mid = chain[-1], (chain[0] if len(chain) > 1 else None)
        td = trust_domain_of_ca(root)
        if td is None:
            raise CertificateAuthorityError(
                f"{directory / 'ca.pem'}: the root has no spiffe:// URI SAN naming its trust domain"
            )
        issuer = mid if mid is not None else root
        if issuer.public_key() != key.public_key():
            raise CertificateAuthorityError(
                f"{directory}: ca.key does not belong to the first certificate of ca.pem"
            )
        root_key = key if mid is None else _maybe_key(directory / "root.key")
        return cls(td, root, key, mid, root_key)


def _maybe_key(path: Path) -> SigningKey | None:
    try:
        return key_from_pem(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise CertificateAuthorityError(f"{path}: unreadable key: {err}") from err
