"""Command groups of the ``isthmus`` CLI, one module per group."""

from __future__ import annotations

import typer

from isthmus.commands import (
    drill_cmds,
    federation_cmds,
    gateway_cmds,
    plan_cmds,
    trust_cmds,
    up_cmds,
)


def register_all(app: typer.Typer) -> None:
    """Attach every command group to the root app."""
    for module in (
        trust_cmds,
        plan_cmds,
        federation_cmds,
        gateway_cmds,
        up_cmds,
        drill_cmds,
    ):
        module.register(app)
