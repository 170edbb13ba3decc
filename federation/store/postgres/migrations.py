"""Ordered schema migrations of the PostgreSQL backend (append only; never edit a released one)."""

from __future__ import annotations

from federation.store.schema import (
    POSTGRES,
    Migration,
    composed_snapshots_schema,
    initial_schema,
    recoveries_schema,
    snapshot_sections_schema,
)

MIGRATIONS: tuple[Migration, ...] = (
    initial_schema(POSTGRES),
    recoveries_schema(POSTGRES),
    snapshot_sections_schema(POSTGRES),
    composed_snapshots_schema(POSTGRES),
)
