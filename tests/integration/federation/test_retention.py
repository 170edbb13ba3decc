"""The leader prunes old timeline events and spent join tokens (bounded retention)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from federation.service.maintenance import Retention
from federation.service.publisher import SnapshotPublisher
from federation.store import PruneCounts, TokenNotFound, open_store

NOW = 1_000_000.0


async def test_the_leader_prunes_old_events_and_spent_tokens(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'f.db'}") as store:
        await store.append_event("lease", "a", {}, NOW - 100.0)
        await store.append_event("lease", "a", {}, NOW - 1.0)
        await store.create_join_token("old", "a", "h", expires_at=NOW - 50.0)
        await store.create_join_token("new", "b", "h", expires_at=NOW + 50.0)
        retention = Retention(events_s=10.0, tokens_s=10.0, interval_s=0.05)
        publisher = SnapshotPublisher(store, clock=lambda: NOW, interval_s=1.0, retention=retention)
        async with trio.open_nursery() as nursery:
            await nursery.start(publisher.run)
            with trio.fail_after(5):
                while len(await store.list_events()) > 1:
                    await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
        assert [e.at for e in await store.list_events()] == [NOW - 1.0]
        assert await store.check_join_token("new", "h", now=NOW) == "b"
        with pytest.raises(TokenNotFound):
            await store.check_join_token("old", "h", now=NOW)
        assert await store.prune(events_before=NOW - 10, tokens_before=NOW - 10) == PruneCounts()
