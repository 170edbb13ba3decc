"""Backend registry and :func:`open_store`.

Backends are registered by config name; the module implementing one is imported only when a
store of that kind is opened (so SQLite users never import psycopg).
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Literal

from pydantic import Field

from federation.model import FrozenModel
from federation.store.errors import StoreConfigError
from federation.store.protocol import Store

StoreOpener = Callable[["StoreConfig"], AbstractAsyncContextManager[Store]]

_SCHEMES = {"sqlite": "sqlite", "postgresql": "postgres", "postgres": "postgres"}
_BACKENDS: dict[str, str | StoreOpener] = {
    "sqlite": "federation.store.sqlite.backend:open_sqlite_store",
    "postgres": "federation.store.postgres.backend:open_postgres_store",
}


class StoreConfig(FrozenModel):
    """The ``store`` section of ``federation.yaml``.

    ``url`` is ``sqlite:///abs/path/federation.db`` or ``postgresql://user@host:port/db``;
    ``backend`` defaults to the one the URL's scheme names.
    """

    url: str
    backend: Literal["sqlite", "postgres"] | None = None
    pool_size: int = Field(default=4, ge=1, le=64, description="PostgreSQL connections")

    def backend_name(self) -> str:
        """The registry key: ``backend`` if given, else derived from the URL scheme."""
        if self.backend is not None:
            return self.backend
        scheme = self.url.partition(":")[0].lower()
        if scheme not in _SCHEMES or "://" not in self.url:
            raise StoreConfigError(
                f"store.url: {self.url!r} is not a store URL; use sqlite:///path/to/federation.db "
                "or postgresql://user@host:port/dbname"
            )
        return _SCHEMES[scheme]


def sqlite_url_for_state_dir(state_dir: Path) -> str:
    """The embedded default: ``<state_dir>/federation.db``."""
    return f"sqlite:///{(state_dir / 'federation.db').resolve()}"


def register_backend(name: str, opener: StoreOpener) -> None:
    """Register (or replace) a backend opener under ``name`` (used by tests and plugins)."""
    _BACKENDS[name] = opener


def _resolve(name: str) -> StoreOpener:
    try:
        entry = _BACKENDS[name]
    except KeyError:
        known = ", ".join(sorted(_BACKENDS))
        raise StoreConfigError(
            f"store.backend: unknown backend {name!r} (known: {known})"
        ) from None
    if isinstance(entry, str):
        module_name, _, attr = entry.partition(":")
        opener: StoreOpener = getattr(importlib.import_module(module_name), attr)
        _BACKENDS[name] = opener
        return opener
    return entry


@asynccontextmanager
async def open_store(url_or_config: str | StoreConfig) -> AsyncIterator[Store]:
    """Open a store, apply pending schema migrations, and close everything on exit.

    The store's background tasks (PostgreSQL change listener) run inside this context; leaving
    it stops them and closes every connection. Raises ``StoreConfigError`` for a bad URL,
    ``StoreUnavailable`` if the database cannot be reached, ``SchemaVersionError`` if its
    schema is newer than this program.
    """
    config = (
        url_or_config if isinstance(url_or_config, StoreConfig) else StoreConfig(url=url_or_config)
    )
    opener = _resolve(config.backend_name())
    async with opener(config) as store:
        yield store
