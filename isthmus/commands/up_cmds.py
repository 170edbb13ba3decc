"""``isthmus up``: for now, two local clusters with a gateway and a demo backend each."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer


def isthmus_home() -> Path:
    """``$ISTHMUS_HOME``, else ``~/.isthmus``."""
    env = os.environ.get("ISTHMUS_HOME")
    return Path(env).expanduser() if env else Path.home() / ".isthmus"


def up(
    home: Annotated[
        Path | None,
        typer.Option("--home", help="state directory (default: $ISTHMUS_HOME or ~/.isthmus)"),
    ] = None,
    port_offset: Annotated[
        int,
        typer.Option(
            "--port-offset", min=0, max=30000, help="shift every port (to run beside another)"
        ),
    ] = 0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
) -> None:
    """Run two local clusters (east, west): a CA, a gateway and a demo backend each."""
    import logging

    import trio

    from isthmus.commands.gateway_cmds import configure_logging
    from isthmus.runner.up import run_up

    configure_logging(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("isthmus.access").setLevel(logging.WARNING)
    where = home if home is not None else isthmus_home()
    trio.run(lambda: run_up(where, offset=port_offset, on_ready=_echo))


def _echo(text: str) -> None:
    typer.echo(text)


def register(app: typer.Typer) -> None:
    """Attach ``isthmus up``."""
    app.command("up")(up)
