"""X.509-SVID verification: the one decision that admits a peer.

:func:`verify_x509_svid` is pure (``now`` is an argument). It reads the leaf's single
``spiffe://`` URI SAN, picks the bundle of **that** trust domain (bundles are never merged),
enforces the SPIFFE leaf rules itself and verifies the chain with
:mod:`cryptography.x509.verification`: the client verifier is used for both directions, with an
end-entity extension policy that accepts the SVID EKUs (serverAuth and/or clientAuth).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from federation.trust.bundle import TrustBundle
from federation.trust.errors import SpiffeIdError, SvidVerificationError
from federation.trust.spiffeid import SpiffeId, TrustDomain

_SVID_EKUS = frozenset({ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH})
MAX_CHAIN_DEPTH = 4


def _svid_eku(_policy: Any, _cert: x509.Certificate, ext: x509.ExtendedKeyUsage | None) -> None:
    # An SVID serves both as TLS client and server; the client verifier alone would insist on
    # clientAuth. Absent EKU is allowed by the SPIFFE spec; present, it must include one of ours.
    if ext is not None and not _SVID_EKUS & set(ext):
        raise ValueError("leaf EKU has neither serverAuth nor clientAuth")


def _ee_policy() -> verification.ExtensionPolicy:
    return verification.ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.ExtendedKeyUsage, verification.Criticality.AGNOSTIC, _svid_eku
    )


@functools.lru_cache(maxsize=128)
def _store(roots: tuple[x509.Certificate, ...]) -> verification.Store:
    return verification.Store(list(roots))


def _reject(reason: str, message: str) -> SvidVerificationError:
    return SvidVerificationError(reason, message)


def _leaf_spiffe_id(leaf: x509.Certificate) -> SpiffeId:
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    if not uris:
        raise _reject("no-uri-san", "leaf certificate has no URI SAN (no SPIFFE ID)")
    if len(uris) > 1:
        raise _reject(
            "multiple-uri-sans",
            f"leaf certificate has {len(uris)} URI SANs, an SVID has exactly one",
        )
    if not uris[0].startswith("spiffe://"):
        raise _reject("not-spiffe", f"leaf URI SAN {uris[0]!r} is not a spiffe:// ID")
    try:
        return SpiffeId.parse(uris[0])
    except SpiffeIdError as err:
        raise _reject(
            "malformed-spiffe-id", f"leaf URI SAN is not a valid SPIFFE ID: {err}"
        ) from err


def _check_leaf_profile(leaf: x509.Certificate, spiffe_id: SpiffeId) -> None:
    try:
        if leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise _reject("leaf-is-ca", f"{spiffe_id}: leaf certificate is a CA (CA:true)")
    except x509.ExtensionNotFound:
        pass
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if usage.key_cert_sign or usage.crl_sign:
        raise _reject(
            "leaf-can-sign",
            f"{spiffe_id}: leaf key usage includes keyCertSign or cRLSign, forbidden for an SVID",
        )


def _check_validity(chain: Sequence[x509.Certificate], spiffe_id: SpiffeId, now: datetime) -> None:
    for index, cert in enumerate(chain):
        what = "leaf" if index == 0 else f"chain[{index}] ({cert.subject.rfc4514_string()})"
        if now < cert.not_valid_before_utc:
            raise _reject(
                "not-yet-valid",
                f"{spiffe_id}: {what} is not valid before {cert.not_valid_before_utc.isoformat()}",
            )
        if now > cert.not_valid_after_utc:
            raise _reject(
                "expired",
                f"{spiffe_id}: {what} expired at {cert.not_valid_after_utc.isoformat()}",
            )


def verify_x509_svid(
    chain: Sequence[x509.Certificate],
    bundles: Mapping[TrustDomain, TrustBundle],
    now: datetime,
) -> SpiffeId:
    """Return the verified SPIFFE ID of ``chain`` (leaf first, then intermediates).

    Raises :class:`SvidVerificationError` whose ``reason`` is one of: ``empty-chain``,
    ``no-uri-san``, ``multiple-uri-sans``, ``not-spiffe``, ``malformed-spiffe-id``,
    ``unknown-trust-domain``, ``leaf-is-ca``, ``leaf-can-sign``, ``not-yet-valid``, ``expired``,
    ``no-authorities``, ``chain-invalid``.
    """
    if not chain:
        raise _reject("empty-chain", "peer presented no certificate")
    leaf = chain[0]
    spiffe_id = _leaf_spiffe_id(leaf)
    bundle = bundles.get(spiffe_id.trust_domain)
    if bundle is None:
        raise _reject(
            "unknown-trust-domain",
            f"{spiffe_id}: no trust bundle for trust domain {spiffe_id.trust_domain}",
        )
    _check_leaf_profile(leaf, spiffe_id)
    _check_validity(chain, spiffe_id, now)
    if not bundle.x509_authorities:
        raise _reject("no-authorities", f"{spiffe_id}: bundle of {bundle.trust_domain} is empty")
    verifier = (
        verification.PolicyBuilder()
        .store(_store(bundle.x509_authorities))
        .time(now)
        .max_chain_depth(MAX_CHAIN_DEPTH)
        .extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(), ee_policy=_ee_policy()
        )
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, list(chain[1:]))
    except verification.VerificationError as err:
        raise _reject(
            "chain-invalid",
            f"{spiffe_id}: chain does not verify against the bundle of "
            f"{spiffe_id.trust_domain}: {err}",
        ) from err
    return spiffe_id
