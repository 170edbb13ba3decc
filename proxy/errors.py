"""Error root of the data-plane engine. Subclasses are named by who failed."""


class ProxyError(Exception):
    """Root of every error raised by :mod:`proxy`."""
