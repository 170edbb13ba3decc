"""Ordered schema migrations of the SQLite backend (append only; never edit a released one)."""

from __future__ import annotations

from federation.store.schema import (
    SQLITE,
    Migration,
    composed_snapshots_schema,
    initial_schema,
    recoveries_schema,
    snapshot_sections_schema,
)

MIGRATIONS: tuple[Migration, ...] = (
    initial_schema(SQLITE),
    recoveries_schema(SQLITE),
    snapshot_sections_schema(SQLITE),
    composed_snapshots_schema(SQLITE),
)
