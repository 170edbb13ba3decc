"""Errors of :mod:`federation.store`, each named by what failed.

Everything here derives from :class:`StoreError` (itself a ``FederationError``), so the API layer
can map the whole family at one boundary: token errors to 401/403/410, stale sequences to 409,
invalid documents to 422, :class:`StoreUnavailable` to 503.
"""

from __future__ import annotations

from federation.errors import FederationError


class StoreError(FederationError):
    """Root of every error raised by a store backend."""


class StoreConfigError(StoreError):
    """A store URL or config is malformed or names an unknown backend."""


class StoreUnavailable(StoreError):
    """The database could not be reached or the connection broke mid-operation.

    The operation may or may not have been applied when this is raised from a write (the commit
    acknowledgement may be what was lost); retry idempotent operations, re-read otherwise.
    """


class SchemaVersionError(StoreError):
    """The database schema is newer than this program knows (a downgrade), or a migration failed."""


class InvalidDocument(StoreError, ValueError):
    """A JSON document handed to the store is not a JSON object (wrong type, corrupt text, NaN).

    ``field`` names the argument; nothing was stored.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}; nothing was stored")


class TokenError(StoreError):
    """A join token was refused. ``token_id`` names it (never the secret)."""

    reason = "token"

    def __init__(self, token_id: str, message: str) -> None:
        self.token_id = token_id
        super().__init__(message)


class TokenNotFound(TokenError):
    """No join token with this id exists (never created, or mistyped)."""

    reason = "not-found"


class TokenExpired(TokenError):
    """The join token's lifetime is over; create a new one (``isthmus federation token create``)."""

    reason = "expired"


class TokenAlreadyUsed(TokenError):
    """The join token was consumed before; tokens are single-use."""

    reason = "already-used"


class TokenSecretMismatch(TokenError):
    """The presented secret does not match the stored hash (tampered token); nothing consumed."""

    reason = "secret-mismatch"


class DuplicateToken(TokenError):
    """A join token with this id already exists; nothing was stored."""

    reason = "duplicate"


class StaleBundleSequence(StoreError):
    """A bundle update's sequence is not strictly above the stored one; nothing was stored."""

    def __init__(self, trust_domain: str, offered: int, stored: int) -> None:
        self.trust_domain = trust_domain
        self.offered = offered
        self.stored = stored
        super().__init__(
            f"bundle for trust domain {trust_domain!r}: sequence {offered} is not above the "
            f"stored sequence {stored}; publish the update with a higher spiffe_sequence"
        )


class LeadershipLost(StoreError):
    """The connection holding a leadership lock broke; the leader's work was cancelled."""
