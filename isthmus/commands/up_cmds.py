"""``isthmus up``: the whole federation on one machine (three clouds by default)."""

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
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="topology file (default: the bundled three clouds)"),
    ] = None,
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
    fast: Annotated[
        bool,
        typer.Option("--fast", help="0.5 s reports, 0.25 s probes (tests, quick drills)"),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
) -> None:
    """Run a federation on this machine: a federation service, three clusters in three
    clouds with their gateways and replicas, and traffic between them. Ctrl-C stops it."""
    import logging
    import time

    import trio
    from rich.console import Console

    from isthmus.commands.gateway_cmds import configure_logging
    from isthmus.runner.config import UpConfig
    from isthmus.runner.up import default_config, run_up

    configure_logging(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("isthmus.access").setLevel(logging.WARNING)
    # hypercorn resets its logger's level to INFO when a server starts; a filter stays.
    logging.getLogger("hypercorn.error").addFilter(lambda r: r.levelno >= logging.WARNING)
    console = Console(highlight=False)
    began = time.perf_counter()
    topology = UpConfig.from_file(config) if config is not None else default_config()
    if fast:
        topology = topology.with_intervals(0.5, 0.25)
    where = home if home is not None else isthmus_home()

    def progress(text: str) -> None:
        console.print(
            f"[green]✓[/green] [dim]{time.perf_counter() - began:5.1f}s[/dim] {text}",
            soft_wrap=True,
        )

    def ready(text: str) -> None:
        console.print(text, markup=False, soft_wrap=True)

    console.print(f"[bold]isthmus up[/bold]: starting in {where / 'up'}")
    trio.run(
        lambda: run_up(
            where, config=topology, offset=port_offset, progress=progress, on_ready=ready
        )
    )
    console.print("isthmus up: stopped")


def register(app: typer.Typer) -> None:
    """Attach ``isthmus up``."""
    app.command("up")(up)
