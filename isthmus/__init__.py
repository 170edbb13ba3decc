"""Composition root: the ``isthmus`` command line and the embedded runner behind ``isthmus up``."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("isthmus")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
