"""``isthmus up`` renews each gateway's SVID at half-life and the running gateway presents it."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import trio

from federation.trust import CertificateAuthority, X509Svid, issue_x509_svid
from isthmus.runner.up import rotate_svid
from tests.integration.gateway.harness import open_federation


async def test_short_lived_svid_is_renewed_at_half_life_and_saved(tmp_path: Path) -> None:
    async with open_federation(tmp_path) as fed:
        running = fed["west"].gateway
        assert running is not None
        directory = tmp_path / "west"
        ca = CertificateAuthority.load(directory / "ca")
        short = issue_x509_svid(
            ca, running.identity.svid.spiffe_id, now=datetime.now(UTC), ttl=timedelta(seconds=4)
        )
        running.identity.update(svid=short)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rotate_svid, directory, running)
            with trio.fail_after(4):
                while running.identity.svid.leaf == short.leaf:
                    await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
        renewed = running.identity.svid
        assert renewed.not_after - renewed.not_before > timedelta(minutes=30)
        on_disk = X509Svid.from_pem(
            (directory / "svid.pem").read_bytes(), (directory / "svid.key").read_bytes()
        )
        assert on_disk.leaf == renewed.leaf
