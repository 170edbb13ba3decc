"""JWT-SVIDs (SPIFFE JWT-SVID spec): ES256 JWS compact tokens with ``kid`` in the header and
claims ``sub`` (the SPIFFE ID), ``aud`` (a list), ``exp`` and ``iat``.

Verification picks the signing key by ``kid`` from the bundle of the trust domain named in the
token's own ``sub`` — the same rule as for X.509-SVIDs — then checks signature, expiry and
audience. Pure: ``now`` is an argument.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from federation.trust.bundle import TrustBundle
from federation.trust.errors import JwtSvidError, SpiffeIdError
from federation.trust.jws import JwsFormatError, parse_compact, sign_compact
from federation.trust.spiffeid import SpiffeId, TrustDomain

DEFAULT_JWT_TTL = timedelta(minutes=5)


def mint_jwt_svid(
    key: ec.EllipticCurvePrivateKey,
    kid: str,
    spiffe_id: SpiffeId,
    audience: Sequence[str] | str,
    *,
    now: datetime,
    ttl: timedelta = DEFAULT_JWT_TTL,
) -> str:
    """A signed JWT-SVID for ``spiffe_id``, valid from ``now`` for ``ttl``."""
    aud = [audience] if isinstance(audience, str) else list(audience)
    if not aud:
        raise JwtSvidError("no-audience", "a JWT-SVID needs at least one audience")
    if ttl <= timedelta(0):
        raise JwtSvidError("bad-ttl", f"ttl must be positive, got {ttl}")
    claims = {
        "sub": str(spiffe_id),
        "aud": aud,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    return sign_compact({"kid": kid, "typ": "JWT"}, json.dumps(claims).encode(), key)


def _claims(payload: bytes) -> dict[str, Any]:
    try:
        claims = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise JwtSvidError("malformed", "JWT payload is not JSON") from err
    if not isinstance(claims, dict):
        raise JwtSvidError("malformed", "JWT payload is not a JSON object")
    return claims


def _subject(claims: Mapping[str, Any]) -> SpiffeId:
    sub = claims.get("sub")
    if not isinstance(sub, str):
        raise JwtSvidError("bad-sub", "JWT-SVID has no 'sub' claim")
    try:
        return SpiffeId.parse(sub)
    except SpiffeIdError as err:
        raise JwtSvidError("bad-sub", f"'sub' is not a SPIFFE ID: {err}") from err


def _check_time_and_audience(
    claims: Mapping[str, Any], sid: SpiffeId, audience: str, now: datetime
) -> None:
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise JwtSvidError("missing-exp", f"{sid}: JWT-SVID has no numeric 'exp' claim")
    if now.timestamp() >= exp:
        raise JwtSvidError("expired", f"{sid}: JWT-SVID expired at {int(exp)}")
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and now.timestamp() < nbf:
        raise JwtSvidError("not-yet-valid", f"{sid}: JWT-SVID not valid before {int(nbf)}")
    aud = claims.get("aud")
    auds = [aud] if isinstance(aud, str) else aud
    if not isinstance(auds, list) or audience not in auds:
        raise JwtSvidError(
            "audience-mismatch", f"{sid}: JWT-SVID audience {aud!r} does not include {audience!r}"
        )


def verify_jwt_svid(
    token: str,
    bundles: Mapping[TrustDomain, TrustBundle],
    audience: str,
    now: datetime,
) -> SpiffeId:
    """The verified SPIFFE ID of ``token``, or :class:`JwtSvidError` whose ``reason`` is one of
    ``malformed``, ``bad-sub``, ``unknown-trust-domain``, ``unknown-kid``, ``bad-signature``,
    ``missing-exp``, ``expired``, ``not-yet-valid``, ``audience-mismatch``."""
    try:
        jws = parse_compact(token)
    except JwsFormatError as err:
        raise JwtSvidError("malformed", f"not a JWT-SVID: {err}") from err
    kid = jws.header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise JwtSvidError("malformed", "JWT-SVID header has no 'kid'")
    claims = _claims(jws.payload)
    sid = _subject(claims)
    bundle = bundles.get(sid.trust_domain)
    if bundle is None:
        raise JwtSvidError(
            "unknown-trust-domain", f"{sid}: no trust bundle for trust domain {sid.trust_domain}"
        )
    key = bundle.jwt_authorities.get(kid)
    if key is None:
        raise JwtSvidError(
            "unknown-kid", f"{sid}: kid {kid!r} is not in the bundle of {sid.trust_domain}"
        )
    if not jws.verify(key):
        raise JwtSvidError("bad-signature", f"{sid}: JWT-SVID signature does not verify")
    _check_time_and_audience(claims, sid, audience, now)
    return sid
