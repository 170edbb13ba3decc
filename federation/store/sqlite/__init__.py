"""The embedded SQLite backend (WAL, one connection per store, one process)."""

from federation.store.sqlite.backend import SqliteStore, open_sqlite_store

__all__ = ["SqliteStore", "open_sqlite_store"]
