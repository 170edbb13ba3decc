"""Command groups of the ``isthmus`` CLI, one module per group."""

from __future__ import annotations

import typer

from isthmus.commands import trust_cmds


def register_all(app: typer.Typer) -> None:
    """Attach every command group to the root app."""
    trust_cmds.register(app)
