"""The minimal transaction interface the shared SQL operations are written against.

Both backends speak the same SQL (``?`` placeholders, ``ON CONFLICT ... DO UPDATE``,
``RETURNING``); a backend's transaction adapts placeholders and announces changes its own way
(SQLite: in-process after commit; PostgreSQL: ``pg_notify`` inside the transaction).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from federation.store.records import Change

Row = tuple[Any, ...]


class Transaction:
    """A DB-API cursor inside one open transaction, plus change bookkeeping.

    Writers run serialised (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a transaction-level
    advisory lock taken first), so ``MAX(seq) + 1`` assigns change sequences in commit order.
    """

    placeholder = "?"

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor
        self.changes: list[Change] = []

    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    def run(self, sql: str, params: Sequence[object] = ()) -> int:
        """Execute a statement; return the affected row count."""
        self._cursor.execute(self._sql(sql), tuple(params))
        return int(self._cursor.rowcount)

    def run_many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        """Execute a statement once per row of parameters (one call to the driver)."""
        self._cursor.executemany(self._sql(sql), [tuple(row) for row in rows])

    def one(self, sql: str, params: Sequence[object] = ()) -> Row | None:
        """Execute a query; return its first row or ``None``."""
        self._cursor.execute(self._sql(sql), tuple(params))
        row = self._cursor.fetchone()
        return None if row is None else tuple(row)

    def all(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        """Execute a query; return every row."""
        self._cursor.execute(self._sql(sql), tuple(params))
        return [tuple(row) for row in self._cursor.fetchall()]

    def changed(self, topic: str) -> Change:
        """Bump the global change sequence for ``topic`` within this transaction."""
        row = self.one("SELECT COALESCE(MAX(seq), 0) + 1 FROM changes")
        assert row is not None
        change = Change(seq=int(row[0]), topic=topic)
        self.run(
            "INSERT INTO changes (topic, seq) VALUES (?, ?) "
            "ON CONFLICT (topic) DO UPDATE SET seq = excluded.seq",
            (topic, change.seq),
        )
        self.changes.append(change)
        self.announce(change)
        return change

    def changed_many(self, topics: Sequence[str]) -> list[Change]:
        """:meth:`changed` for many distinct topics, in order (one ``MAX(seq)`` read and one
        batched upsert instead of two statements per topic)."""
        row = self.one("SELECT COALESCE(MAX(seq), 0) FROM changes")
        assert row is not None
        changes = [Change(seq=int(row[0]) + 1 + i, topic=t) for i, t in enumerate(topics)]
        self.run_many(
            "INSERT INTO changes (topic, seq) VALUES (?, ?) "
            "ON CONFLICT (topic) DO UPDATE SET seq = excluded.seq",
            [(c.topic, c.seq) for c in changes],
        )
        for change in changes:
            self.changes.append(change)
            self.announce(change)
        return changes

    def announce(self, change: Change) -> None:
        """Backend hook: tell other replicas (PostgreSQL ``pg_notify``); SQLite does it later."""
