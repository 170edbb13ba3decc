"""SPIFFE trust bundle codec: a JWK Set with ``spiffe_sequence`` and ``spiffe_refresh_hint``.

Keys with ``use: x509-svid`` carry one CA certificate in ``x5c`` (standard base64 DER); keys with
``use: jwt-svid`` carry a ``kid`` and a public JWK. Parsing is pure and strict: every problem is a
:class:`BundleError` naming the key index and field. A bundle belongs to exactly one trust domain;
:class:`BundleSet` keeps one bundle per trust domain and never merges two.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from federation.trust.errors import BundleError, SpiffeIdError
from federation.trust.files import PUBLIC_MODE, write_file
from federation.trust.spiffeid import SpiffeId, TrustDomain

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

USE_X509 = "x509-svid"
USE_JWT = "jwt-svid"
_CURVES: dict[str, ec.EllipticCurve] = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}


@dataclass(frozen=True, eq=True)
class TrustBundle:
    """The authorities of one trust domain. Immutable; build a new one to rotate."""

    trust_domain: TrustDomain
    x509_authorities: tuple[x509.Certificate, ...] = ()
    jwt_authorities: Mapping[str, PublicKey] = field(default_factory=dict)
    sequence: int = 0
    refresh_hint_s: int | None = None

    def __post_init__(self) -> None:
        if self.sequence < 0:
            raise BundleError(f"bundle of {self.trust_domain}: sequence {self.sequence} < 0")
        object.__setattr__(self, "jwt_authorities", MappingProxyType(dict(self.jwt_authorities)))
        object.__setattr__(self, "x509_authorities", tuple(self.x509_authorities))
        for cert in self.x509_authorities:
            named = trust_domain_of_ca(cert)
            if named is not None and named != self.trust_domain:
                raise BundleError(
                    f"bundle of {self.trust_domain} cannot hold a CA of trust domain {named}: "
                    "bundles are never merged"
                )

    def to_dict(self) -> dict[str, Any]:
        keys: list[dict[str, Any]] = [_x509_jwk(cert) for cert in self.x509_authorities]
        keys += [_jwt_jwk(kid, key) for kid, key in self.jwt_authorities.items()]
        doc: dict[str, Any] = {"keys": keys, "spiffe_sequence": self.sequence}
        if self.refresh_hint_s is not None:
            doc["spiffe_refresh_hint"] = self.refresh_hint_s
        return doc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def save(self, path: Path) -> None:
        write_file(path, self.to_json().encode(), mode=PUBLIC_MODE)


class BundleSet(Mapping[TrustDomain, TrustBundle]):
    """One bundle per trust domain, immutable. Adding a second bundle for a trust domain is an
    error; use :meth:`with_bundle` to replace one."""

    def __init__(self, bundles: Iterable[TrustBundle] = ()) -> None:
        by_td: dict[TrustDomain, TrustBundle] = {}
        for bundle in bundles:
            if bundle.trust_domain in by_td:
                raise BundleError(
                    f"two bundles for trust domain {bundle.trust_domain}: bundles are never merged"
                )
            by_td[bundle.trust_domain] = bundle
        self._by_td = by_td

    def __getitem__(self, td: TrustDomain) -> TrustBundle:
        return self._by_td[td]

    def __iter__(self) -> Iterator[TrustDomain]:
        return iter(self._by_td)

    def __len__(self) -> int:
        return len(self._by_td)

    def __repr__(self) -> str:
        return f"BundleSet({sorted(td.name for td in self._by_td)})"

    def with_bundle(self, bundle: TrustBundle) -> BundleSet:
        """A copy where ``bundle`` replaces any bundle of its trust domain."""
        others = (b for td, b in self._by_td.items() if td != bundle.trust_domain)
        return BundleSet([*others, bundle])

    def without(self, td: TrustDomain) -> BundleSet:
        return BundleSet(b for t, b in self._by_td.items() if t != td)

    def x509_roots(self) -> tuple[x509.Certificate, ...]:
        """Every X.509 authority of every trust domain (the OpenSSL store is their union)."""
        return tuple(c for b in self._by_td.values() for c in b.x509_authorities)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: object, where: str) -> bytes:
    if not isinstance(text, str):
        raise BundleError(f"{where}: expected a base64url string, got {type(text).__name__}")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as err:
        raise BundleError(f"{where}: bad base64url: {err}") from err


def _public_jwk(key: PublicKey) -> dict[str, str]:
    if isinstance(key, ec.EllipticCurvePublicKey):
        size = (key.curve.key_size + 7) // 8
        crv = {"secp256r1": "P-256", "secp384r1": "P-384"}.get(key.curve.name)
        if crv is None:
            raise BundleError(f"unsupported EC curve {key.curve.name}")
        nums = key.public_numbers()
        return {
            "kty": "EC",
            "crv": crv,
            "x": _b64url(nums.x.to_bytes(size, "big")),
            "y": _b64url(nums.y.to_bytes(size, "big")),
        }
    nums_rsa = key.public_numbers()
    return {
        "kty": "RSA",
        "n": _b64url(nums_rsa.n.to_bytes((nums_rsa.n.bit_length() + 7) // 8, "big")),
        "e": _b64url(nums_rsa.e.to_bytes((nums_rsa.e.bit_length() + 7) // 8, "big")),
    }


def _x509_jwk(cert: x509.Certificate) -> dict[str, Any]:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise BundleError(f"CA {cert.subject.rfc4514_string()}: unsupported key type")
    der = cert.public_bytes(serialization.Encoding.DER)
    return {"use": USE_X509, **_public_jwk(key), "x5c": [base64.b64encode(der).decode()]}


def _jwt_jwk(kid: str, key: PublicKey) -> dict[str, Any]:
    return {"use": USE_JWT, "kid": kid, **_public_jwk(key)}


def _parse_public_jwk(jwk: Mapping[str, Any], where: str) -> PublicKey:
    kty = jwk.get("kty")
    if kty is None:
        raise BundleError(f"{where}: missing 'kty'")
    if kty == "EC":
        curve = _CURVES.get(jwk.get("crv"))  # type: ignore[arg-type]
        if curve is None:
            raise BundleError(f"{where}: unsupported crv {jwk.get('crv')!r} (expected P-256)")
        x = int.from_bytes(_b64url_decode(jwk.get("x"), f"{where}.x"), "big")
        y = int.from_bytes(_b64url_decode(jwk.get("y"), f"{where}.y"), "big")
        try:
            return ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
        except ValueError as err:
            raise BundleError(f"{where}: x/y is not a point on {jwk.get('crv')}") from err
    if kty == "RSA":
        n = int.from_bytes(_b64url_decode(jwk.get("n"), f"{where}.n"), "big")
        e = int.from_bytes(_b64url_decode(jwk.get("e"), f"{where}.e"), "big")
        try:
            return rsa.RSAPublicNumbers(e, n).public_key()
        except ValueError as err:
            raise BundleError(f"{where}: invalid RSA n/e: {err}") from err
    raise BundleError(f"{where}: unsupported kty {kty!r} (expected 'EC' or 'RSA')")


def trust_domain_of_ca(cert: x509.Certificate) -> TrustDomain | None:
    """The trust domain named by a CA certificate's ``spiffe://`` URI SAN, if it has one."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith("spiffe://"):
            try:
                return SpiffeId.parse(uri).trust_domain
            except SpiffeIdError:
                return None
    return None


def _parse_x509_key(jwk: Mapping[str, Any], where: str) -> x509.Certificate:
    x5c = jwk.get("x5c")
    if not isinstance(x5c, list) or len(x5c) != 1:
        count = len(x5c) if isinstance(x5c, list) else "no"
        raise BundleError(f"{where}: x5c must hold exactly one certificate, got {count}")
    if not isinstance(x5c[0], str):
        raise BundleError(f"{where}.x5c[0]: expected a base64 string")
    try:
        der = base64.b64decode(x5c[0], validate=True)
    except (binascii.Error, ValueError) as err:
        raise BundleError(f"{where}.x5c[0]: bad base64: {err}") from err
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as err:
        raise BundleError(f"{where}.x5c[0]: not a DER X.509 certificate") from err
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = bc.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise BundleError(
            f"{where}: certificate {cert.subject.rfc4514_string()!r} is not a CA "
            "(basicConstraints CA:true missing)"
        )
    if _parse_public_jwk(jwk, where) != cert.public_key():
        raise BundleError(f"{where}: JWK key parameters do not match the x5c certificate's key")
    return cert


def _parse_keys(
    keys: list[Any],
) -> tuple[list[x509.Certificate], dict[str, PublicKey]]:
    certs: list[x509.Certificate] = []
    jwt_keys: dict[str, PublicKey] = {}
    for index, jwk in enumerate(keys):
        where = f"keys[{index}]"
        if not isinstance(jwk, dict):
            raise BundleError(f"{where}: expected a JSON object, got {type(jwk).__name__}")
        use = jwk.get("use")
        if use == USE_X509:
            certs.append(_parse_x509_key(jwk, where))
        elif use == USE_JWT:
            kid = jwk.get("kid")
            if not isinstance(kid, str) or not kid:
                raise BundleError(f"{where}: jwt-svid key without a 'kid'")
            if kid in jwt_keys:
                raise BundleError(f"{where}: duplicate kid {kid!r}")
            jwt_keys[kid] = _parse_public_jwk(jwk, where)
        elif use is None:
            raise BundleError(f"{where}: missing 'use' (expected 'x509-svid' or 'jwt-svid')")
        else:
            raise BundleError(
                f"{where}: unsupported use {use!r} (expected 'x509-svid' or 'jwt-svid')"
            )
    return certs, jwt_keys


def _non_negative_int(doc: Mapping[str, Any], name: str) -> int | None:
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise BundleError(f"{name}: expected an integer, got {type(value).__name__}")
    if value < 0:
        raise BundleError(f"{name}: must not be negative, got {value}")
    return value


def _decide_trust_domain(
    trust_domain: TrustDomain | None, certs: list[x509.Certificate]
) -> TrustDomain:
    named = {td for td in map(trust_domain_of_ca, certs) if td is not None}
    if trust_domain is not None:
        others = named - {trust_domain}
        if others:
            raise BundleError(
                f"bundle for {trust_domain} holds a CA of trust domain "
                f"{sorted(t.name for t in others)[0]}: bundles are never merged"
            )
        return trust_domain
    if len(named) > 1:
        raise BundleError(f"bundle mixes trust domains {sorted(t.name for t in named)}")
    if not named:
        raise BundleError(
            "cannot tell the bundle's trust domain: no x509-svid key carries a spiffe:// URI "
            "SAN; pass the trust domain explicitly"
        )
    return named.pop()


def parse_bundle(
    trust_domain: TrustDomain | None, data: bytes | str | Mapping[str, Any]
) -> TrustBundle:
    """Parse a SPIFFE bundle. ``trust_domain=None`` derives it from the CA certificates' URI SAN.

    Raises :class:`BundleError` naming the problem (and the key index where there is one).
    """
    doc: Any = data
    if isinstance(data, bytes | str):
        try:
            doc = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise BundleError(f"bundle is not valid JSON: {err}") from err
    if not isinstance(doc, Mapping):
        raise BundleError(f"bundle must be a JSON object, got {type(doc).__name__}")
    keys = doc.get("keys")
    if not isinstance(keys, list):
        raise BundleError("bundle has no 'keys' array")
    sequence = _non_negative_int(doc, "spiffe_sequence") or 0
    refresh_hint = _non_negative_int(doc, "spiffe_refresh_hint")
    certs, jwt_keys = _parse_keys(keys)
    td = _decide_trust_domain(trust_domain, certs)
    return TrustBundle(td, tuple(certs), jwt_keys, sequence, refresh_hint)


def load_bundle_file(path: Path, trust_domain: TrustDomain | None = None) -> TrustBundle:
    """Read and parse a bundle file; errors name the file."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise BundleError(f"{path}: cannot read bundle: {err.strerror}") from err
    try:
        return parse_bundle(trust_domain, data)
    except BundleError as err:
        raise BundleError(f"{path}: {err}") from err
