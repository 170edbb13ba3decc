"""Join tokens: single-use, short-lived, opaque to the operator, checkable without I/O.

A token is ``isthmus-join-v1.`` followed by base64url JSON of the federation URL, the SHA-256
fingerprint of the federation's TLS CA certificate, the cluster name, a token id and a secret.
The federation stores only a :class:`JoinTokenRecord`: the id, the cluster, the expiry and a hash
that binds the secret to every other field, so editing the URL, the fingerprint or the cluster
name inside a token makes the hash disagree and the token is refused as tampered.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from federation.model.routing import check_cluster_name
from federation.service.errors import JoinTokenError

TOKEN_PREFIX = "isthmus-join-v1."  # noqa: S105 - a format tag, not a secret
DEFAULT_TOKEN_TTL_S = 3600.0
_FIELDS = ("url", "ca_sha256", "cluster", "id", "secret")


@dataclass(frozen=True, repr=False)
class JoinToken:
    """The decoded content of a join token. ``secret`` never appears in ``repr``."""

    federation_url: str
    ca_sha256: str
    cluster: str
    token_id: str
    secret: str

    def __repr__(self) -> str:
        return (
            f"JoinToken(cluster={self.cluster!r}, id={self.token_id!r}, "
            f"url={self.federation_url!r})"
        )

    def encode(self) -> str:
        """The opaque text an operator copies to the gateway."""
        doc = dict(zip(_FIELDS, self._values(), strict=True))
        raw = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
        return TOKEN_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def _values(self) -> tuple[str, ...]:
        return (self.federation_url, self.ca_sha256, self.cluster, self.token_id, self.secret)

    def digest(self) -> str:
        """SHA-256 over every field: what the federation stores instead of the secret."""
        material = "\0".join(("isthmus-join-v1", *self._values())).encode()
        return hashlib.sha256(material).hexdigest()

    @classmethod
    def decode(cls, text: str) -> JoinToken:
        """Parse a token; raise :class:`JoinTokenError` (``malformed``) saying what is off."""
        text = text.strip()
        if not text.startswith(TOKEN_PREFIX):
            raise JoinTokenError(
                f"join token must start with {TOKEN_PREFIX!r}; copy the whole output of "
                "'isthmus federation token create'",
                reason="malformed",
            )
        body = text[len(TOKEN_PREFIX) :]
        try:
            doc: Any = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (binascii.Error, ValueError) as err:
            raise JoinTokenError(
                "join token is damaged (not base64url JSON); copy it again", reason="malformed"
            ) from err
        if not isinstance(doc, dict) or sorted(doc) != sorted(_FIELDS):
            raise JoinTokenError(
                f"join token must carry exactly the fields {', '.join(_FIELDS)}",
                reason="malformed",
            )
        if not all(isinstance(doc[name], str) and doc[name] for name in _FIELDS):
            raise JoinTokenError("join token fields must be non-empty strings", reason="malformed")
        try:
            check_cluster_name(doc["cluster"])
        except ValueError as err:
            raise JoinTokenError(f"join token: {err}", reason="malformed") from err
        return cls(doc["url"], doc["ca_sha256"], doc["cluster"], doc["id"], doc["secret"])


@dataclass(frozen=True)
class JoinTokenRecord:
    """What the store keeps of a token: no secret, only a hash binding it to every field."""

    token_id: str
    cluster: str
    digest: str
    created_at: float
    expires_at: float


def create_join_token(
    *,
    federation_url: str,
    ca_sha256: str,
    cluster: str,
    now: float,
    ttl_s: float = DEFAULT_TOKEN_TTL_S,
    entropy: Callable[[int], bytes] = os.urandom,
) -> tuple[JoinToken, JoinTokenRecord]:
    """A new token and the record to store. ``entropy`` must be a CSPRNG (tests may pin it)."""
    try:
        check_cluster_name(cluster)
    except ValueError as err:
        raise JoinTokenError(f"--cluster: {err}", reason="malformed") from err
    if ttl_s <= 0:
        raise JoinTokenError(f"--ttl must be positive, got {ttl_s:g}s", reason="malformed")
    token_id = entropy(9).hex()
    secret = base64.urlsafe_b64encode(entropy(32)).rstrip(b"=").decode()
    token = JoinToken(federation_url.rstrip("/"), ca_sha256, cluster, token_id, secret)
    record = JoinTokenRecord(token_id, cluster, token.digest(), now, now + ttl_s)
    return token, record


_REFUSALS = {
    "reused": "was already used; tokens are single-use: create a new one with "
    "'isthmus federation token create'",
    "unknown": "is unknown to this federation; create one with 'isthmus federation token create'",
    "tampered": "was altered (its URL, CA fingerprint or cluster no longer match what was "
    "issued); use the token exactly as printed",
    "expired": "has expired; create a new one with 'isthmus federation token create'",
}

#: Store refusal classes (by their ``reason``) -> our reason.
STORE_REASONS = {
    "not-found": "unknown",
    "secret-mismatch": "tampered",
    "already-used": "reused",
    "expired": "expired",
}


def join_refusal(token: JoinToken, reason: str) -> JoinTokenError:
    """The error for a refused token: ``reason`` is ``unknown``, ``reused``, ``tampered`` or
    ``expired``; the message names the token id and cluster (never the secret) and what to do."""
    what = _REFUSALS.get(reason, "was refused")
    return JoinTokenError(
        f"join token {token.token_id} for cluster {token.cluster!r} {what}", reason=reason
    )


def check_join_token(
    token: JoinToken, record: JoinTokenRecord | None, *, now: float, already_used: bool = False
) -> None:
    """Decide whether ``token`` may join against a stored record; raise :func:`join_refusal`.

    Pure: the same decisions a store makes atomically in ``consume_join_token``, in the same
    order (unknown, tampered, reused, expired)."""
    if record is None:
        raise join_refusal(token, "unknown")
    if not hmac.compare_digest(record.digest, token.digest()) or record.cluster != token.cluster:
        raise join_refusal(token, "tampered")
    if already_used:
        raise join_refusal(token, "reused")
    if now >= record.expires_at:
        raise join_refusal(token, "expired")
