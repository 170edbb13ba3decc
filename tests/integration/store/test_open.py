"""Opening a store: URL handling and unreachable databases give clear, typed errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from federation.store import (
    StoreConfig,
    StoreConfigError,
    StoreUnavailable,
    open_store,
    sqlite_url_for_state_dir,
)


@pytest.mark.parametrize("url", ["mysql://db/x", "federation.db", "sqlite://", "sqlite://:memory:"])
async def test_bad_urls_are_refused_with_the_expected_form(url: str) -> None:
    with pytest.raises(StoreConfigError, match="store.url"):
        async with open_store(url):
            pass


async def test_unreachable_postgres_is_store_unavailable() -> None:
    with pytest.raises(StoreUnavailable, match="cannot connect"):
        async with open_store("postgresql://isthmus@127.0.0.1:1/federation?connect_timeout=2"):
            pass


async def test_state_dir_default_creates_an_owner_only_database(tmp_path: Path) -> None:
    url = sqlite_url_for_state_dir(tmp_path / "home")
    async with open_store(StoreConfig(url=url)) as store:
        assert store.backend == "sqlite"
        await store.put_service("svc.ns", {}, now=1.0)
    database = tmp_path / "home" / "federation.db"
    assert database.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "home").stat().st_mode & 0o777 == 0o700
