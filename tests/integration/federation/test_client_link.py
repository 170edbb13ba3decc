"""The gateway-side client against a real federation: join, watch, ACK/NACK, forged bundles,
and static stability (serve from disk while the federation is down)."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trio

from federation.client import (
    ClientStateDir,
    FederationClient,
    FederationLink,
    FederationRefused,
    Transport,
    join_federation,
)
from federation.model import EndpointHealth, HealthReport, Locality, ServiceHealth, Snapshot
from federation.service import FederationTlsError, JoinToken
from federation.service.server import RunningFederation
from federation.service.stream_push import BundleSection, PushEncoder
from federation.trust import BundleSet, CertificateAuthority, TrustBundle, TrustDomain
from federation.trust.signed_bundle import sign_bundle_update
from tests.integration.federation.conftest import fed_config, start_federation


@dataclass
class Gateway:
    """A gateway's federation side: its state dir, CA, JWT key and what it applied."""

    name: str
    root: Path
    services: tuple[ServiceHealth, ...] = ()
    applied: list[tuple[Snapshot, BundleSet]] = field(default_factory=list)
    refuse: bool = False

    def __post_init__(self) -> None:
        self.state = ClientStateDir(self.root / self.name)
        self.key, self.kid = self.state.load_or_create_jwt_key()
        self.td = TrustDomain(f"{self.name}.isthmus.test")
        self.ca = CertificateAuthority.create(self.td, now=datetime.now(UTC))
        self.bundle = TrustBundle(self.td, (self.ca.root,), {self.kid: self.key.public_key()}, 1)
        self.seq = 0

    async def join(self, token: str) -> None:
        record = await join_federation(
            token,
            trust_bundle=self.bundle,
            gateway_addresses=("127.0.0.1:15443",),
            locality=Locality(cloud="local", region=self.name),
        )
        self.state.save_join(record)

    def apply(self, snapshot: Snapshot, bundles: BundleSet) -> None:
        if self.refuse:
            raise ValueError("routing model rejected by the gateway")
        self.applied.append((snapshot, bundles))

    def report(self) -> HealthReport:
        self.seq += 1
        return HealthReport(sequence=self.seq, sent_at=time.time(), services=self.services)

    def link(self, client: FederationClient, transport: Transport = "stream") -> FederationLink:
        return FederationLink(
            client,
            self.state,
            own_bundle=self.bundle,
            apply=self.apply,
            report_source=self.report,
            rng=random.Random(7),
            backoff_base_s=0.02,
            backoff_cap_s=0.2,
            transport=transport,
        )

    def client(self) -> FederationClient:
        record = self.state.load_join()
        assert record is not None
        return FederationClient(record, jwt_key=self.key, kid=self.kid, long_poll_s=2.0)


CHECKOUT = ServiceHealth(
    name="checkout.shop",
    endpoints=(EndpointHealth(address="127.0.0.1:8080"),),
    allowed_sources=("*",),
)


async def wait_until(predicate: object, timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():  # type: ignore[operator]
            await trio.sleep(0.01)


async def serve_forged_bundle(federation: RunningFederation, gcp: Gateway, tmp_path: Path) -> None:
    """A compromised federation serves gcp's trust domain with an attacker's CA and key,
    "signed" by the attacker, at a higher sequence (bypassing the API's own checks)."""
    attacker = Gateway("gcp", tmp_path / "evil")
    forged = TrustBundle(gcp.td, (attacker.ca.root,), {gcp.kid: attacker.key.public_key()}, 7)
    signed = sign_bundle_update(forged, attacker.key, gcp.kid).decode()
    await federation.service.store.put_bundle(gcp.td.name, 7, forged.to_json(), signed, time.time())
    federation.service.publisher.mark_dirty()


async def test_client_join_pins_the_ca_and_refuses_reuse(
    federation: RunningFederation, tmp_path: Path
) -> None:
    gw = Gateway("aws", tmp_path)
    token = await federation.service.create_join_token("aws")
    wrong_pin = JoinToken.decode(token)
    forged = JoinToken(
        wrong_pin.federation_url, "sha256:" + "0" * 64, "aws", wrong_pin.token_id, wrong_pin.secret
    )
    with pytest.raises(FederationTlsError, match="pins"):
        await gw.join(forged.encode())
    await gw.join(token)  # the pin failure sent nothing: the token is still unused
    record = gw.state.load_join()
    assert record is not None and record.cluster == "aws" and record.trust_domain == gw.td.name
    with pytest.raises(FederationRefused) as info:
        await gw.join(token)
    assert info.value.status == 403 and info.value.reason == "reused"


@pytest.mark.parametrize("transport", ["stream", "rest"])
async def test_link_applies_acks_and_persists_snapshots(
    federation: RunningFederation, tmp_path: Path, transport: Transport
) -> None:
    aws, gcp = Gateway("aws", tmp_path), Gateway("gcp", tmp_path, services=(CHECKOUT,))
    for gw in (aws, gcp):
        await gw.join(await federation.service.create_join_token(gw.name))
    async with aws.client() as c1, gcp.client() as c2, trio.open_nursery() as nursery:
        links = [aws.link(c1, transport), gcp.link(c2, transport)]
        for link in links:
            await nursery.start(link.run)

        def routed() -> bool:
            if not aws.applied:
                return False
            services = aws.applied[-1][0].routing.services
            return bool(services) and services[0].priorities[0].weights == {"gcp": 1}

        await wait_until(routed)
        version = aws.applied[-1][0].version
        assert TrustDomain("gcp.isthmus.test") in aws.applied[-1][1]
        persisted = aws.state.load_snapshot()
        assert persisted is not None and persisted.snapshot.version == version
        with trio.fail_after(5):
            while True:
                rows = (await federation.service.status()).clusters
                row = next(r for r in rows if r.cluster == "aws")
                if row.acked_version is not None and row.acked_version >= version:
                    break
                await trio.sleep(0.02)
        assert links[0].describe()["streaming"] is (transport == "stream")
        assert links[0].describe()["transport"] == transport
        nursery.cancel_scope.cancel()


async def test_forged_bundle_update_is_refused_by_the_gateway_even_if_served(
    federation: RunningFederation, tmp_path: Path
) -> None:
    aws, gcp = Gateway("aws", tmp_path), Gateway("gcp", tmp_path)
    for gw in (aws, gcp):
        await gw.join(await federation.service.create_join_token(gw.name))
    async with aws.client() as client, trio.open_nursery() as nursery:
        link = aws.link(client)
        await nursery.start(link.run)
        # aws must know gcp's genuine bundle first (joins are rebuilt in bursts, so gcp's may
        # come later than aws's first snapshot): a first bundle is accepted unsigned
        await wait_until(lambda: gcp.td in link.bundles)
        good = len(aws.applied)
        await serve_forged_bundle(federation, gcp, tmp_path)
        await wait_until(lambda: "refused" in link.last_error)
        assert "gcp.isthmus.test" in link.last_error
        assert len(aws.applied) == good  # nothing applied
        assert link.bundles[gcp.td].x509_authorities == (gcp.ca.root,)

        async def nacked() -> bool:
            row = next(
                r for r in (await federation.service.status()).clusters if r.cluster == "aws"
            )
            return row.nacked_version is not None

        with trio.fail_after(5):
            while not await nacked():
                await trio.sleep(0.02)
        persisted = aws.state.load_snapshot()
        assert persisted is not None
        assert "attacker" not in persisted.bundles["gcp.isthmus.test"]
        assert persisted.bundles["gcp.isthmus.test"] == gcp.bundle.to_json()
        nursery.cancel_scope.cancel()


async def test_a_forged_bundle_inside_a_bundle_delta_is_refused_by_the_gateway(
    federation: RunningFederation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[bytes] = []
    cut = PushEncoder.bundles_line

    def recorded(self: PushEncoder, held: str, section: BundleSection) -> bytes:
        sent.append(cut(self, held, section))
        return sent[-1]

    monkeypatch.setattr(PushEncoder, "bundles_line", recorded)
    aws, gcp, azure = (Gateway(name, tmp_path) for name in ("aws", "gcp", "azure"))
    for gw in (aws, gcp, azure):
        await gw.join(await federation.service.create_join_token(gw.name))
    async with aws.client() as client, trio.open_nursery() as nursery:
        link = aws.link(client)
        await nursery.start(link.run)
        await wait_until(lambda: gcp.td in link.bundles and azure.td in link.bundles)
        good = len(aws.applied)
        await serve_forged_bundle(federation, gcp, tmp_path)
        await wait_until(lambda: "refused" in link.last_error)
        # it came as a delta naming only gcp's trust domain, and was checked all the same
        delta = json.loads(sent[-1])
        assert delta["type"] == "bundles_delta"
        assert set(delta["bundles"]) == set(delta["bundle_updates"]) == {gcp.td.name}
        assert "gcp.isthmus.test" in link.last_error
        assert len(aws.applied) == good
        assert link.bundles[gcp.td].x509_authorities == (gcp.ca.root,)
        nursery.cancel_scope.cancel()


async def test_gateway_keeps_its_snapshot_and_restarts_from_disk_while_federation_is_down(
    tmp_path: Path,
) -> None:
    aws, gcp = Gateway("aws", tmp_path), Gateway("gcp", tmp_path, services=(CHECKOUT,))
    async with trio.open_nursery() as fed_nursery:
        fed = await start_federation(fed_nursery, fed_config(tmp_path))
        for gw in (aws, gcp):
            await gw.join(await fed.service.create_join_token(gw.name))
        async with aws.client() as c1, gcp.client() as c2, trio.open_nursery() as nursery:
            link = aws.link(c1)
            await nursery.start(link.run)
            await nursery.start(gcp.link(c2).run)
            await wait_until(
                lambda: bool(aws.applied) and bool(aws.applied[-1][0].routing.services)
            )
            fed_nursery.cancel_scope.cancel()  # the federation dies
            await wait_until(lambda: link.failures >= 3)
            assert link.active is not None and link.active.routing.services  # still routing
            nursery.cancel_scope.cancel()
    last = aws.applied[-1][0]
    restarted = Gateway("aws", tmp_path)  # same state dir: same join record, key, snapshot
    restarted.bundle = aws.bundle
    async with restarted.client() as client, trio.open_nursery() as nursery:
        link = restarted.link(client)
        await nursery.start(link.run)
        assert link.ready.is_set()
        assert restarted.applied[0][0] == last
        assert TrustDomain("gcp.isthmus.test") in restarted.applied[0][1]
        await wait_until(lambda: link.failures >= 2)
        nursery.cancel_scope.cancel()


async def test_malformed_snapshot_is_nacked_and_the_last_good_one_kept(
    federation: RunningFederation, tmp_path: Path
) -> None:
    from federation.service.publisher import ServedSnapshot

    aws, gcp = Gateway("aws", tmp_path), Gateway("gcp", tmp_path)
    await aws.join(await federation.service.create_join_token("aws"))
    async with aws.client() as client, trio.open_nursery() as gateway:
        link = aws.link(client)
        await gateway.start(link.run)
        await wait_until(lambda: bool(aws.applied))
        good = aws.applied[-1][0].version
        # From now on the federation serves garbage bodies (for real, newer versions).
        publisher = federation.service.publisher
        stamp = publisher._stamp

        def corrupt(*args: Any, **kwargs: Any) -> ServedSnapshot:
            served = stamp(*args, **kwargs)
            body = b'{"version": %d, "routing": {"cluster": "aws", "peers": "nope"}}'
            return ServedSnapshot(served.version, served.digest, body % served.version, 0.0)

        publisher._stamp = corrupt  # type: ignore[method-assign]
        await gcp.join(await federation.service.create_join_token("gcp"))  # aws gains a peer
        await wait_until(lambda: "not valid" in link.last_error)
        assert link.active is not None and link.active.version == good
        assert aws.applied[-1][0].version == good
        described = link.describe()
        assert described["active_version"] == good
        refused = described["last_seen_version"]
        assert isinstance(refused, int) and refused > good
        with trio.fail_after(5):
            while True:
                rows = (await federation.service.status()).clusters
                row = next(r for r in rows if r.cluster == "aws")
                if row.nacked_version == refused:
                    break
                await trio.sleep(0.02)
        assert "routing" in row.nack_error
        gateway.cancel_scope.cancel()


async def test_link_falls_back_to_rest_when_the_federation_has_no_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from federation.service.stream import SnapshotStreamEndpoint

    async def not_found(self: object, scope: Any, receive: Any, send: Any) -> None:
        body = b'{"error": {"reason": "not-found", "message": "Not Found", "fields": []}}'
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": body})

    monkeypatch.setattr(SnapshotStreamEndpoint, "__call__", not_found)  # an older federation
    aws, gcp = Gateway("aws", tmp_path), Gateway("gcp", tmp_path, services=(CHECKOUT,))
    async with trio.open_nursery() as fed_nursery:
        fed = await start_federation(fed_nursery, fed_config(tmp_path))
        for gw in (aws, gcp):
            await gw.join(await fed.service.create_join_token(gw.name))
        async with aws.client() as c1, gcp.client() as c2, trio.open_nursery() as nursery:
            link = aws.link(c1)
            await nursery.start(link.run)
            await nursery.start(gcp.link(c2).run)
            await wait_until(
                lambda: bool(aws.applied) and bool(aws.applied[-1][0].routing.services)
            )
            assert link.describe()["transport"] == "rest"
            assert link.describe()["streaming"] is False
            nursery.cancel_scope.cancel()
        fed_nursery.cancel_scope.cancel()


async def test_link_reopens_its_stream_at_once_when_the_token_expires(
    federation: RunningFederation, tmp_path: Path
) -> None:
    aws, gcp = Gateway("aws", tmp_path), Gateway("gcp", tmp_path, services=(CHECKOUT,))
    for gw in (aws, gcp):
        await gw.join(await federation.service.create_join_token(gw.name))
    record = aws.state.load_join()
    assert record is not None
    short = record.model_copy(update={"max_token_ttl_s": 3})  # tokens live 2-3 s (whole s)
    async with (
        FederationClient(short, jwt_key=aws.key, kid=aws.kid, long_poll_s=2.0) as c1,
        gcp.client() as c2,
        trio.open_nursery() as nursery,
    ):
        link = aws.link(c1)
        await nursery.start(link.run)
        await wait_until(lambda: bool(aws.applied))
        await trio.sleep(4.5)  # time passing IS the test: at least one token lifetime ends
        await nursery.start(gcp.link(c2).run)  # a change, pushed on a reopened stream
        await wait_until(lambda: bool(aws.applied[-1][0].routing.services))
        assert link.failures == 0 and link.describe()["streaming"] is True
        nursery.cancel_scope.cancel()


async def test_streamed_health_changes_end_in_the_snapshot_the_rest_api_serves(
    federation: RunningFederation, tmp_path: Path
) -> None:
    """After the first ACK, pushes are deltas: what the gateway applies after each health
    change is still exactly the snapshot the long-poll serves."""
    aws, gcp = Gateway("aws", tmp_path), Gateway("gcp", tmp_path, services=(CHECKOUT,))
    for gw in (aws, gcp):
        await gw.join(await federation.service.create_join_token(gw.name))
    async with aws.client() as c1, gcp.client() as c2, trio.open_nursery() as nursery:
        for link in (aws.link(c1), gcp.link(c2)):
            await nursery.start(link.run)
        for healthy in (True, False, True):
            gcp.services = (
                CHECKOUT.model_copy(
                    update={
                        "endpoints": (EndpointHealth(address="127.0.0.1:8080", healthy=healthy),)
                    }
                ),
            )

            def applied(healthy: bool = healthy) -> bool:
                # gcp's only backend down: aws has no route to checkout.shop at all
                return bool(aws.applied) and bool(aws.applied[-1][0].routing.services) is healthy

            await wait_until(applied, timeout=15)
            served = federation.service.publisher.current("aws")
            assert served is not None
            if served.version == aws.applied[-1][0].version:
                assert aws.applied[-1][0] == Snapshot.model_validate_json(served.body)
        nursery.cancel_scope.cancel()
