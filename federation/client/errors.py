"""Errors of the gateway-side federation client, named by what failed."""

from __future__ import annotations

from federation.errors import FederationError


class FederationClientError(FederationError):
    """Root of the client's errors."""


class FederationUnavailable(FederationClientError):
    """The federation could not be reached or answered 5xx; retry later (static stability)."""


class FederationRefused(FederationClientError):
    """The federation answered 4xx: ``status`` and the server's ``reason`` say why."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(message)


class SnapshotRejected(FederationClientError):
    """A snapshot failed the gateway's checks and is NACKed; the last good one stays active.

    ``version`` is the refused version when it could be read (``None`` for unreadable bodies).
    ``refetch``: the version itself was not judged (a stream delta against a routing this
    gateway does not hold); the NACK asks for it in full, so it still counts as unseen.
    """

    def __init__(self, message: str, *, version: int | None = None, refetch: bool = False) -> None:
        self.version = version
        self.refetch = refetch
        super().__init__(message)


class ClientStateError(FederationClientError):
    """The client's state directory (join record, last snapshot) is missing or unreadable."""
