"""Error root of :mod:`federation`. Subclasses are named by who failed."""


class FederationError(Exception):
    """Root of every error raised by :mod:`federation`."""
