"""Errors of :mod:`federation.trust`, each named by what failed."""

from __future__ import annotations

from federation.errors import FederationError


class SpiffeIdError(FederationError):
    """A SPIFFE ID or trust domain is malformed; the message names the offending part."""


class CertificateAuthorityError(FederationError):
    """A CA could not be created, loaded or saved (missing files, refusal to overwrite, ...)."""


class SvidError(FederationError):
    """An X.509-SVID could not be issued, saved or loaded."""


class BundleError(FederationError):
    """A SPIFFE trust bundle is malformed or inconsistent; the message says which key and why."""


class SvidVerificationError(FederationError):
    """A peer's X.509-SVID was rejected.

    ``reason`` is a short machine-usable code (``expired``, ``unknown-trust-domain``, ...);
    the message is the human explanation.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class JwtSvidError(FederationError):
    """A JWT-SVID is malformed or failed verification; ``reason`` is a short code."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class BundleUpdateError(FederationError):
    """A signed bundle update was rejected (bad signature, stale sequence, other trust domain)."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)
