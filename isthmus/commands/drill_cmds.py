"""Placeholder: the `drill` command group is being written; `register` attaches it."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach the command group (none yet)."""
    del app
