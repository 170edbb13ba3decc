"""Signed trust-bundle updates: the federation relays bundles but is not a trust root.

An update for trust domain T is an ES256 JWS (compact) over T's new bundle JSON, signed by a
``jwt-svid`` key contained in T's **currently accepted** bundle; its protected header names T
(``spiffe_td``) and the key (``kid``). A recipient accepts it only if the key is in its current
bundle of T, the signature verifies, the new bundle is T's, and the sequence number is strictly
higher. A compromised relay can therefore replay nothing old and mint nothing new.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from federation.trust.bundle import TrustBundle, parse_bundle
from federation.trust.errors import BundleError, BundleUpdateError
from federation.trust.jws import JwsFormatError, parse_compact, sign_compact

UPDATE_TYPE = "spiffe-bundle+jws"


def sign_bundle_update(bundle: TrustBundle, key: ec.EllipticCurvePrivateKey, kid: str) -> bytes:
    """Sign ``bundle`` with ``key`` (whose public half is ``kid`` in the bundle recipients hold
    now). Returns the compact JWS as ASCII bytes."""
    header = {"kid": kid, "typ": UPDATE_TYPE, "spiffe_td": bundle.trust_domain.name}
    return sign_compact(header, bundle.to_json().encode(), key).encode()


def accept_bundle_update(current: TrustBundle, update: bytes | str) -> TrustBundle:
    """The new bundle of ``current.trust_domain`` carried by ``update``, or
    :class:`BundleUpdateError` whose ``reason`` is one of ``malformed``,
    ``other-trust-domain``, ``unknown-signing-key``, ``bad-signature``, ``malformed-bundle``,
    ``stale-sequence``."""
    td = current.trust_domain
    try:
        jws = parse_compact(update)
    except JwsFormatError as err:
        raise BundleUpdateError("malformed", f"bundle update for {td}: {err}") from err
    named = jws.header.get("spiffe_td")
    if named != td.name:
        raise BundleUpdateError(
            "other-trust-domain", f"bundle update is for trust domain {named!r}, not {td}"
        )
    kid = jws.header.get("kid")
    key = current.jwt_authorities.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise BundleUpdateError(
            "unknown-signing-key",
            f"bundle update for {td} is signed with kid {kid!r}, "
            "which is not in the currently accepted bundle",
        )
    if not jws.verify(key):
        raise BundleUpdateError("bad-signature", f"bundle update for {td}: signature is invalid")
    try:
        new = parse_bundle(td, jws.payload)
    except BundleError as err:
        raise BundleUpdateError("malformed-bundle", f"bundle update for {td}: {err}") from err
    if new.sequence <= current.sequence:
        raise BundleUpdateError(
            "stale-sequence",
            f"bundle update for {td} has sequence {new.sequence}, "
            f"not higher than the current {current.sequence}",
        )
    return new
