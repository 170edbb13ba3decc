"""The ``isthmus`` command line.

Each command group lives in :mod:`isthmus.commands` and registers itself on the root app.
Errors from our packages are printed as one line (exit 1); usage errors exit 2 (click's rule).
"""

from __future__ import annotations

import sys

import typer

from cloudadapters import CloudAdapterError
from federation import FederationError
from gateway import GatewayError
from isthmus import __version__
from isthmus.commands import register_all
from isthmus.errors import IsthmusError
from proxy import ProxyError

app = typer.Typer(
    name="isthmus",
    help="Isthmus: multicloud federation gateway.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"isthmus {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Isthmus: east-west mTLS gateways, SPIFFE trust federation and placement."""


register_all(app)

_OUR_ERRORS = (IsthmusError, FederationError, ProxyError, GatewayError, CloudAdapterError)


def main() -> None:
    """Console-script entry point."""
    try:
        app(standalone_mode=True)
    except _OUR_ERRORS as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(1)
