"""Error root of :mod:`cloudadapters`."""


class CloudAdapterError(Exception):
    """Root of every error raised by a cloud adapter."""
