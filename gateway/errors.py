"""Error root of :mod:`gateway` and its subclasses, named by what failed."""

from __future__ import annotations


class GatewayError(Exception):
    """Root of every error raised by the gateway process."""


class GatewayConfigError(GatewayError):
    """``gateway.yaml`` (or a routing file) failed validation.

    ``source`` is the file, ``problems`` one ``field.path: message`` line each.
    """

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class IdentityError(GatewayError):
    """The gateway's own SVID, key or bundles cannot be loaded or do not match its config."""


class FederationJoinError(GatewayError):
    """The gateway could not join its federation: the token was refused (reused, expired,
    tampered), there is no token and no earlier join, or the state belongs to another cluster."""


class PeerRejected(GatewayError):
    """A peer gateway's certificate was rejected; ``reason`` is a short machine-usable code."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)
