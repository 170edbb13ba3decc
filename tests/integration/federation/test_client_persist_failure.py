"""A snapshot that cannot be saved (disk full, read-only state dir) never stops the gateway:
it stays active, is ACKed, the failure is shown, and the next snapshot is saved again."""

from __future__ import annotations

from pathlib import Path

import trio

from federation.client.state import PersistedSnapshot
from federation.service.server import RunningFederation
from tests.integration.federation.test_client_link import CHECKOUT, Gateway, wait_until


async def test_failed_save_keeps_serving_reports_and_retries(
    federation: RunningFederation, tmp_path: Path
) -> None:
    aws, gcp = Gateway("aws", tmp_path), Gateway("gcp", tmp_path, services=(CHECKOUT,))
    await aws.join(await federation.service.create_join_token("aws"))
    real_save = aws.state.save_snapshot
    disk_full = True

    def save(persisted: PersistedSnapshot) -> None:
        if disk_full:
            raise OSError(28, "No space left on device")
        real_save(persisted)

    aws.state.save_snapshot = save  # type: ignore[method-assign]
    async with aws.client() as client, trio.open_nursery() as nursery:
        link = aws.link(client)
        await nursery.start(link.run)
        await wait_until(lambda: bool(aws.applied))
        first = aws.applied[-1][0].version
        assert link.active is not None and link.active.version == first
        state = link.describe()
        assert "No space left" in str(state["persist_error"]) and state["persisted_version"] is None
        assert state["persist_failures"] == 1
        with trio.fail_after(5):  # the valid snapshot is ACKed although it was not saved
            while (await federation.service.status()).clusters[0].acked_version != first:
                await trio.sleep(0.02)
        disk_full = False
        await gcp.join(await federation.service.create_join_token("gcp"))
        async with gcp.client() as c2:
            await nursery.start(gcp.link(c2).run)  # gcp reports: aws gets a new snapshot
            await wait_until(lambda: link.persisted_version not in (None, first))
            assert link.describe()["persist_error"] == ""
            persisted = aws.state.load_snapshot()
            assert persisted is not None and persisted.snapshot.version == link.persisted_version
            nursery.cancel_scope.cancel()
