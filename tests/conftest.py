"""Shared fixtures. Layer markers are applied from the directory a test lives in."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.postgres import postgres_dsn, postgres_server

__all__ = ["postgres_dsn", "postgres_server"]

_LAYERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for layer in _LAYERS:
            if layer in parts:
                item.add_marker(getattr(pytest.mark, layer))
