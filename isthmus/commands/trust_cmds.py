"""``isthmus ca``, ``isthmus svid`` and ``isthmus bundle``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach the trust command groups."""
    del app
