"""Error root of :mod:`gateway`."""


class GatewayError(Exception):
    """Root of every error raised by the gateway process."""
