"""Hand-written ES256 JWS compact serialisation (RFC 7515 / 7518), small enough to audit.

Only ``alg: ES256`` (ECDSA P-256 with SHA-256) is produced or accepted: the signature is the raw
32-byte ``r`` followed by the 32-byte ``s`` (not DER), everything base64url without padding.
Used by JWT-SVIDs (:mod:`federation.trust.jwt`) and signed bundle updates
(:mod:`federation.trust.signed_bundle`). Pure: no clock, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

ALG = "ES256"
_COORD = 32
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class JwsFormatError(ValueError):
    """The token is not a well-formed ES256 JWS; the message says which part."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str, what: str) -> bytes:
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise JwsFormatError(f"{what} is not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as err:
        raise JwsFormatError(f"{what} is not base64url") from err


def _require_p256(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> None:
    if not isinstance(key.curve, ec.SECP256R1):
        raise JwsFormatError(f"ES256 needs a P-256 key, got {key.curve.name}")


def sign_compact(header: dict[str, Any], payload: bytes, key: ec.EllipticCurvePrivateKey) -> str:
    """``base64url(header).base64url(payload).base64url(r||s)`` with ``alg`` forced to ES256."""
    _require_p256(key)
    protected = b64url(json.dumps({**header, "alg": ALG}, separators=(",", ":")).encode())
    signing_input = f"{protected}.{b64url(payload)}".encode()
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return (
        f"{signing_input.decode()}.{b64url(r.to_bytes(_COORD, 'big') + s.to_bytes(_COORD, 'big'))}"
    )


@dataclass(frozen=True)
class CompactJws:
    """A parsed but **unverified** JWS: call :meth:`verify` before trusting ``payload``."""

    header: dict[str, Any]
    payload: bytes
    signing_input: bytes
    signature: bytes

    def verify(self, key: object) -> bool:
        """True iff ``signature`` is a valid ES256 signature by ``key`` (a P-256 public key)."""
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            return False
        if len(self.signature) != 2 * _COORD:
            return False
        r = int.from_bytes(self.signature[:_COORD], "big")
        s = int.from_bytes(self.signature[_COORD:], "big")
        try:
            key.verify(encode_dss_signature(r, s), self.signing_input, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


def parse_compact(token: str | bytes) -> CompactJws:
    """Split and decode a compact JWS whose header says ``alg: ES256``; raise
    :class:`JwsFormatError` otherwise (``alg: none`` and HMAC algorithms included)."""
    text = token.decode("ascii", "replace") if isinstance(token, bytes) else token
    parts = text.strip().split(".")
    if len(parts) != 3:
        raise JwsFormatError(f"expected 3 dot-separated parts, got {len(parts)}")
    try:
        header = json.loads(b64url_decode(parts[0], "header"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise JwsFormatError("header is not JSON") from err
    if not isinstance(header, dict):
        raise JwsFormatError("header is not a JSON object")
    if header.get("alg") != ALG:
        raise JwsFormatError(f"unsupported alg {header.get('alg')!r}, only ES256 is accepted")
    if "crit" in header:
        raise JwsFormatError("critical header parameters are not supported")
    payload = b64url_decode(parts[1], "payload")
    signature = b64url_decode(parts[2], "signature")
    return CompactJws(header, payload, f"{parts[0]}.{parts[1]}".encode(), signature)
