"""Errors of the federation service, named by what failed; each maps to one HTTP status."""

from __future__ import annotations

from federation.errors import FederationError


class ServiceError(FederationError):
    """Root of the service's errors. ``status`` is the HTTP status the API answers with."""

    status = 500

    def __init__(self, message: str, *, reason: str = "error", status: int | None = None) -> None:
        self.reason = reason
        if status is not None:
            self.status = status
        super().__init__(message)


class JoinTokenError(ServiceError):
    """A join token is malformed, tampered, unknown, already used or expired (``reason``)."""

    status = 403


class AuthenticationError(ServiceError):
    """No credential, or one that does not verify (bad signature, expired, wrong audience)."""

    status = 401


class PermissionDeniedError(ServiceError):
    """A verified caller tried to act on what is not its own (another cluster's data)."""

    status = 403


class NotFoundError(ServiceError):
    """The cluster, trust domain or snapshot asked for does not exist (yet)."""

    status = 404


class ConflictError(ServiceError):
    """The request contradicts stored state (cluster already joined, stale sequence, ...)."""

    status = 409


class InvalidInputError(ServiceError):
    """The body parsed but its content is unusable (a malformed bundle, a bad signature)."""

    status = 422


class FederationTlsError(ServiceError):
    """The federation's own TLS material could not be created, loaded or pinned."""


class PayloadTooLargeError(ServiceError):
    """The request body is over the API's size limit; refused before parsing."""

    status = 413


class BadRequestError(ServiceError):
    """The request's body or query fails validation; ``fields`` lists ``(field, message)``."""

    status = 422

    def __init__(
        self, message: str, *, reason: str = "invalid", fields: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self.fields = fields
        super().__init__(message, reason=reason)
