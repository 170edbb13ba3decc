"""A minimal ES256 JWT-SVID mint/verify used by these tests until ``federation.trust.jwt``
(owned by the trust engineer) lands; then the fixtures switch to it."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from federation.errors import FederationError
from federation.trust import BundleSet, SpiffeId


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint(
    key: ec.EllipticCurvePrivateKey, kid: str, sub: str, aud: str, now: float, ttl: float
) -> str:
    header = _b64(json.dumps({"alg": "ES256", "kid": kid, "typ": "JWT"}).encode())
    claims: dict[str, Any] = {"sub": sub, "aud": [aud], "iat": int(now), "exp": int(now + ttl)}
    payload = _b64(json.dumps(claims).encode())
    der = key.sign(f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return f"{header}.{payload}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def verify(token: str, bundles: BundleSet, audience: str, now: float) -> SpiffeId:
    header_b, payload_b, sig_b = token.split(".")
    header = json.loads(_unb64(header_b))
    claims = json.loads(_unb64(payload_b))
    sub = SpiffeId.parse(claims["sub"])
    bundle = bundles.get(sub.trust_domain)
    if bundle is None or header.get("kid") not in bundle.jwt_authorities:
        raise FederationError("unknown kid")
    key = bundle.jwt_authorities[header["kid"]]
    raw = _unb64(sig_b)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        key.verify(der, f"{header_b}.{payload_b}".encode(), ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg,arg-type]
    except InvalidSignature as err:
        raise FederationError("bad signature") from err
    if audience not in claims["aud"]:
        raise FederationError("wrong audience")
    if claims["exp"] <= now:
        raise FederationError("expired")
    return sub
