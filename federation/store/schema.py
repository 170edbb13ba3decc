"""Versioned schema migrations, shared runner and the backend-neutral table definitions.

Each backend keeps its own ordered list of :class:`Migration` (``sqlite/migrations.py``,
``postgres/migrations.py``); the runner applies the pending ones inside the caller's
transaction and records each in ``schema_version``. Applying is idempotent: opening a database
twice applies nothing the second time. A database newer than the program is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from federation.store.errors import SchemaVersionError
from federation.store.transaction import Transaction


@dataclass(frozen=True)
class Migration:
    """One schema step: ``version`` (1, 2, ... without gaps) and its DDL statements."""

    version: int
    description: str
    statements: tuple[str, ...]


@dataclass(frozen=True)
class Dialect:
    """Type names that differ between backends."""

    integer: str
    real: str
    identity: str


SQLITE = Dialect(integer="INTEGER", real="REAL", identity="INTEGER PRIMARY KEY AUTOINCREMENT")
POSTGRES = Dialect(
    integer="BIGINT",
    real="DOUBLE PRECISION",
    identity="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
)

_INITIAL = (
    "CREATE TABLE join_tokens (token_id TEXT PRIMARY KEY, cluster TEXT NOT NULL,"
    " secret_hash TEXT NOT NULL, expires_at {real} NOT NULL, used_at {real})",
    "CREATE TABLE clusters (name TEXT PRIMARY KEY, trust_domain TEXT NOT NULL,"
    " document TEXT NOT NULL)",
    "CREATE TABLE bundles (trust_domain TEXT PRIMARY KEY, sequence {integer} NOT NULL,"
    " bundle TEXT NOT NULL, signed_update TEXT, stored_at {real} NOT NULL)",
    "CREATE TABLE bundle_history (id {identity}, trust_domain TEXT NOT NULL,"
    " sequence {integer} NOT NULL, bundle TEXT NOT NULL, signed_update TEXT,"
    " stored_at {real} NOT NULL)",
    "CREATE INDEX bundle_history_by_domain ON bundle_history (trust_domain, sequence)",
    "CREATE TABLE reports (cluster TEXT PRIMARY KEY, received_at {real} NOT NULL,"
    " report TEXT NOT NULL)",
    "CREATE TABLE snapshots (cluster TEXT PRIMARY KEY, version {integer} NOT NULL,"
    " document TEXT NOT NULL, created_at {real} NOT NULL)",
    "CREATE TABLE snapshot_acks (cluster TEXT PRIMARY KEY,"
    " acked_version {integer} NOT NULL DEFAULT 0, acked_at {real},"
    " nacked_version {integer} NOT NULL DEFAULT 0, nacked_error TEXT, nacked_at {real})",
    "CREATE TABLE services (name TEXT PRIMARY KEY, policy TEXT NOT NULL,"
    " updated_at {real} NOT NULL)",
    "CREATE TABLE decisions (service TEXT PRIMARY KEY, decision TEXT NOT NULL,"
    " decided_at {real} NOT NULL)",
    "CREATE TABLE events (id {identity}, kind TEXT NOT NULL, subject TEXT NOT NULL,"
    " detail TEXT NOT NULL, at {real} NOT NULL)",
    "CREATE TABLE changes (topic TEXT PRIMARY KEY, seq {integer} NOT NULL)",
    "CREATE UNIQUE INDEX changes_by_seq ON changes (seq)",
)


def initial_schema(dialect: Dialect) -> Migration:
    """Version 1: every table of the store, rendered for ``dialect``."""
    statements = tuple(
        sql.format(integer=dialect.integer, real=dialect.real, identity=dialect.identity)
        for sql in _INITIAL
    )
    return Migration(1, "initial schema", statements)


def recoveries_schema(dialect: Dialect) -> Migration:
    """Version 2: ``cluster_recoveries``, each cluster's last ``unreachable -> healthy`` time,
    so a new leader honours the failback windows its predecessor opened."""
    statement = (
        "CREATE TABLE cluster_recoveries (cluster TEXT PRIMARY KEY,"
        f" recovered_at {dialect.real} NOT NULL)"
    )
    return Migration(2, "cluster recoveries (failback windows)", (statement,))


def snapshot_sections_schema(dialect: Dialect) -> Migration:
    """Version 3: ``snapshot_sections``, text many snapshots of one rebuild share (the trust
    bundles), stored once and referenced by digest from ``snapshots.section``."""
    del dialect  # the same DDL on both backends
    return Migration(
        3,
        "shared snapshot sections",
        (
            "CREATE TABLE snapshot_sections (digest TEXT PRIMARY KEY, body TEXT NOT NULL)",
            "ALTER TABLE snapshots ADD COLUMN section TEXT",
        ),
    )


def composed_snapshots_schema(dialect: Dialect) -> Migration:
    """Version 4: snapshots stored as a recipe over several shared sections (``sections``,
    space-separated digests into ``snapshot_sections``) and the writer's content ``digest``."""
    del dialect  # the same DDL on both backends
    return Migration(
        4,
        "composed snapshots and their digests",
        (
            "ALTER TABLE snapshots ADD COLUMN sections TEXT",
            "ALTER TABLE snapshots ADD COLUMN digest TEXT",
        ),
    )


def apply_migrations(tx: Transaction, migrations: Sequence[Migration]) -> int:
    """Apply the pending ``migrations`` in ``tx``; return the resulting schema version.

    The caller holds the database's migration lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL an
    advisory lock) so concurrent replicas starting together apply each step once. Raises
    :class:`SchemaVersionError` if the database is newer than ``migrations``.
    """
    tx.run(
        "CREATE TABLE IF NOT EXISTS schema_version "
        "(version INTEGER PRIMARY KEY, description TEXT NOT NULL)"
    )
    row = tx.one("SELECT COALESCE(MAX(version), 0) FROM schema_version")
    current = 0 if row is None else int(row[0])
    latest = migrations[-1].version if migrations else 0
    if current > latest:
        raise SchemaVersionError(
            f"the database schema is at version {current} but this program knows only up to "
            f"{latest}; upgrade isthmus (downgrades are not supported)"
        )
    for migration in migrations:
        if migration.version <= current:
            continue
        for statement in migration.statements:
            tx.run(statement)
        tx.run(
            "INSERT INTO schema_version (version, description) VALUES (?, ?)",
            (migration.version, migration.description),
        )
    return max(current, latest)
