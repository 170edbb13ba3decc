"""Federated gateways end to end, with real processes: ``isthmus federation serve``, ``isthmus
gateway run --join TOKEN`` per cluster, demo backends, real mTLS between gateways and real TLS
to the federation, all on 127.0.0.1. Reports every 0.25 s, so a lease is 0.75 s.

East has no backend of its own; west and north export ``hello.demo``. What a user would see:
east's local clients reach the other clusters' backends as soon as the gateways joined, a
silent cluster drops out of everyone's routes within a few intervals, a peer that one gateway
cannot reach is not declared dead for everyone, and traffic never fails because the federation
died — not even across a gateway restart while it is down. A federation whose store was tampered
with cannot make a gateway accept a bundle (forged key, replayed lower sequence, another trust
domain's update): the gateway NACKs, keeps routing, and ``isthmus status`` shows the NACK. A CA
rotation through signed updates fails no request.
"""

from __future__ import annotations

import base64
import json
import re
import signal
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from federation.client import ClientStateDir, FederationClient
from federation.model.api import EndpointHealth, HealthReport, PeerProbe, ServiceHealth
from federation.trust import (
    CertificateAuthority,
    TrustBundle,
    TrustDomain,
    gateway_id,
    issue_x509_svid,
    load_bundle_file,
    parse_bundle,
    sign_bundle_update,
)
from tests.e2e.gateway.harness import INTERVAL, SERVICE, Gateway, Traffic, World, wait_for


@pytest.fixture
async def world(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    missed = getattr(request, "param", 3)
    async with trio.open_nursery() as nursery:
        built = World(tmp_path, nursery, missed_intervals=missed)
        try:
            yield built
        finally:
            with trio.CancelScope(shield=True):
                await built.close()
            nursery.cancel_scope.cancel()


def tampered(token: str) -> str:
    """The same token with its secret changed (the digest the federation stored no longer
    matches)."""
    prefix, body = token.split(".", 1)
    doc = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    doc["secret"] = doc["secret"][::-1]
    raw = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    return f"{prefix}." + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def refused_join(world: World, gw: Gateway, token: str, name: str) -> str:
    """Run a fresh gateway (own state dir) with ``token``; it must exit 1 with one line."""
    config = gw.config.with_name(f"{name}.yaml")
    state = Path(f"{gw.state_dir}-{name}")
    config.write_text(gw.config.read_text().replace(str(gw.state_dir), str(state)))
    # The same gateway key (so the same bundle) but no join record: only the token decides.
    (state / "federation").mkdir(parents=True)
    key = (gw.state_dir / "federation" / "jwt.key").read_bytes()
    (state / "federation" / "jwt.key").write_bytes(key)
    (state / "federation" / "jwt.key").chmod(0o600)
    with trio.fail_after(30):
        done = await world.cli("gateway", "run", "--config", str(config), "--join", token)
    assert done.returncode == 1, done.stderr.decode()[-2000:]
    errors = [line for line in done.stderr.decode().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr.decode(), done.stderr.decode()
    return errors[0]


async def join_all(
    world: World, names: dict[str, bool]
) -> tuple[dict[str, Gateway], dict[str, str]]:
    """Start the federation and one joining gateway per cluster; the tokens they used."""
    await world.start_federation()
    gateways = {name: await world.add_gateway(name, exports=ex) for name, ex in names.items()}
    tokens = {name: await world.token(name) for name in gateways}
    for gw in gateways.values():
        await world.start_gateway(gw, tokens[gw.name])
    for gw in gateways.values():
        await world.wait_ready(gw)
    return gateways, tokens


async def test_join_cross_lease_expiry_link_down_and_static_stability(world: World) -> None:
    gws, tokens = await join_all(world, {"east": False, "west": True, "north": True})
    east, west, north = gws["east"], gws["west"], gws["north"]
    expired = await world.token("east", ttl="1s")
    # (a) joined: east's snapshot routes hello.demo to both other clusters; requests cross.
    await world.wait_levels(east, [{"west", "north"}], 20)
    traffic = Traffic(east.spec.outbound_port)
    crossed = await traffic.burst(30)
    assert not traffic.failures and set(crossed) == {"west", "north"}
    fed_view = (await world.config_doc(east))["federation"]
    assert fed_view["active_version"] is not None and fed_view["cluster"] == "east"
    await wait_for("every lease healthy and every snapshot ACKed", _all_healthy(world, gws), 10)
    rows = await world.status()  # what `isthmus status --output json` shows
    assert rows["east"]["acked_version"] >= fed_view["active_version"]
    assert rows["west"]["locality"]["region"] == "region-west"
    # Reused, expired and tampered tokens: one clear line, exit 1, nothing joined.
    async with trio.open_nursery() as nursery:
        lines: dict[str, str] = {}

        async def refuse(kind: str, token: str) -> None:
            lines[kind] = await refused_join(world, east, token, kind)

        nursery.start_soon(refuse, "reused", tokens["east"])
        nursery.start_soon(refuse, "expired", expired)
        nursery.start_soon(refuse, "tampered", tampered(await world.token("east")))
    assert "already used" in lines["reused"], lines
    assert "expired" in lines["expired"], lines
    assert "altered" in lines["tampered"], lines
    # (c) north falls silent (SIGSTOP: no reports, no answers): within a few intervals its
    # lease expires and it leaves east's routes; it comes back when it speaks again.
    stopped_at = trio.current_time()
    assert north.proc is not None
    north.proc.send_signal(signal.SIGSTOP)
    await world.wait_levels(east, [{"west"}], 10)
    moved_s = trio.current_time() - stopped_at
    assert moved_s < 20 * INTERVAL, f"traffic moved away only after {moved_s:.2f}s"

    async def north_unreachable() -> bool:
        return bool((await world.status_now())["north"]["lease"] == "unreachable")

    await wait_for("north's lease to expire", north_unreachable, 10)
    north.proc.send_signal(signal.SIGCONT)
    back_s = await world.wait_levels(east, [{"west", "north"}], 20)
    print(f"north left east's routes {moved_s:.2f}s after it fell silent, back {back_s:.2f}s after")
    # (d) the federation dies mid-traffic: not one request fails, and a gateway restarted while
    # it is down serves from its persisted snapshot.
    async with trio.open_nursery() as nursery:
        await nursery.start(traffic.run)
        await wait_for("traffic", _more(traffic, 20), 10)
        await world.stop(world.federation)
        await wait_for("traffic without a federation", _more(traffic, 60), 20)
        nursery.cancel_scope.cancel()
    assert not traffic.failures, traffic.failures[:5]
    await world.stop(east.proc)
    await world.start_gateway(east)  # no token: the state directory has the credentials
    await world.wait_ready(east)
    assert await world.route_levels(east) == [{"west", "north"}]
    after_restart = await traffic.burst(30)
    assert not traffic.failures and set(after_restart) == {"west", "north"}
    assert "serving the persisted snapshot" in world.log("east")
    # (c) link down: west reports it cannot reach north. North stays up for everyone else
    # (east still routes to it); only west's own snapshot avoids north.
    await world.start_federation()
    await wait_for("every gateway back", _all_healthy(world, gws), 20)
    assert west.proc is not None
    west.proc.send_signal(signal.SIGSTOP)  # from now on the test speaks for west
    state = ClientStateDir(west.state_dir / "federation")
    record, (key, kid) = state.load_join(), state.load_or_create_jwt_key()
    assert record is not None
    client = FederationClient(record, jwt_key=key, kid=kid, long_poll_s=1)
    async with client, trio.open_nursery() as nursery:
        nursery.start_soon(_report_link_down, client, west)

        async def link_down_seen() -> bool:
            north_row = (await world.status_now())["north"]
            return bool(
                north_row["lease"] == "healthy" and north_row["unreachable_from"] == ["west"]
            )

        await wait_for("north marked unreachable from west only", link_down_seen, 10)
        assert {"north"} <= set().union(*await world.route_levels(east))
        own = await client.watch_once(0)
        assert own is not None
        levels = next(s for s in own.routing.services if s.name == SERVICE).priorities
        assert [set(level.weights) for level in levels] == [{"west"}]
        nursery.cancel_scope.cancel()
    west.proc.send_signal(signal.SIGCONT)


def _more(traffic: Traffic, count: int) -> Callable[[], Awaitable[bool]]:
    target = traffic.total + count

    async def check() -> bool:
        return traffic.total >= target or bool(traffic.failures)

    return check


def _all_healthy(world: World, gws: dict[str, Gateway]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        try:
            rows = await world.status_now()
        except httpx.HTTPError:
            return False
        return all(
            rows[name]["lease"] == "healthy"
            and rows[name]["acked_version"] == rows[name]["snapshot_version"]
            for name in gws
        )

    return check


async def _report_link_down(client: FederationClient, west: Gateway) -> None:
    """Report as west, every interval: its backend is healthy, north cannot be reached."""
    endpoint = EndpointHealth(address=f"127.0.0.1:{west.backend_port}")
    service = ServiceHealth(name=SERVICE, endpoints=(endpoint,), allowed_sources=("*",))
    peers = (PeerProbe(cluster="east", ok=True), PeerProbe(cluster="north", ok=False))
    for sequence in range(10**6, 2 * 10**6):
        report = HealthReport(
            sequence=sequence, sent_at=time.time(), services=(service,), peers=peers
        )
        await client.report(report)
        await trio.sleep(INTERVAL)


# A 5 s lease: this test restarts the federation three times, and a restarted federation
# expires every lease older than one lease at start-up (before anyone could report again),
# which would pull every remote route for a moment (reported to the federation's owner).
@pytest.mark.parametrize("world", [20], indirect=True)
async def test_forged_bundles_are_nacked_and_ca_rotation_fails_no_request(world: World) -> None:
    gws, _ = await join_all(world, {"east": False, "west": True})
    east, west = gws["east"], gws["west"]
    td = TrustDomain(west.trust_domain)
    await world.wait_levels(east, [{"west"}], 20)
    traffic = Traffic(east.spec.outbound_port)
    async with trio.open_nursery() as nursery:
        await nursery.start(traffic.run)
        await wait_for("traffic", _more(traffic, 10), 10)
        # (b) a compromised federation serves west's bundle replaced by an attacker's, signed
        # by the attacker's key with a higher sequence: east refuses it and keeps routing.
        genuine = world.bundle_row(td.name)
        attacker = ec.generate_private_key(ec.SECP256R1())
        rogue_ca = CertificateAuthority.create(td, now=datetime.now(UTC))
        # West's own jwt-svid key stays in (west can still talk to the federation); the rogue
        # root and the rogue signing key are added.
        keys = {**parse_bundle(td, genuine[1]).jwt_authorities, "rogue": attacker.public_key()}
        forged = TrustBundle(
            td, rogue_ca.bundle().x509_authorities, keys, genuine[0] + 1, 300
        )  # fmt: skip
        update = sign_bundle_update(forged, attacker, "rogue").decode()
        await _serve_tampered(world, td.name, (forged.sequence, forged.to_json(), update))
        nack = await _wait_nack(world, "east")
        assert "not in the currently accepted bundle" in nack["nack_error"], nack
        assert _accepted(east, td).sequence == genuine[0]
        await wait_for("east's refused-snapshot gauge", _refused_gauge(world, east, 1), 5)
        shown = (await world.cli("status", "--config", str(world.fed_config))).stdout.decode()
        assert re.search(r"v\d+: snapshot v\d+ refused", shown), shown  # the table shows it too
        await _serve_tampered(world, td.name, genuine)
        await wait_for("east to ACK again", _acked_beyond(world, "east", 0), 20)
        await wait_for("east's refused-snapshot gauge", _refused_gauge(world, east, 0), 5)
        # (e) CA rotation under traffic: publish the new root alongside the old (signed
        # update, sequence up), switch west's SVID to it, then retire the old root.
        old = load_bundle_file(west.bundle_file, td)
        new_ca = CertificateAuthority.create(td, now=datetime.now(UTC))
        new_root = new_ca.bundle().x509_authorities
        for roots in ((*old.x509_authorities, *new_root), new_root):
            sequence = _accepted(east, td).sequence + 1
            seen = (await world.status_now())["east"]["snapshot_version"]
            TrustBundle(td, roots, {}, sequence, 300).save(west.bundle_file)
            await wait_for(f"east to accept west's bundle {sequence}",
                           _acked_beyond(world, "east", seen), 20)  # fmt: skip
            assert _accepted(east, td).x509_authorities == roots
            if len(roots) == 2:
                both = world.bundle_row(td.name)
                svid = issue_x509_svid(
                    new_ca, gateway_id(td, "west"), now=datetime.now(UTC), ttl=timedelta(hours=1)
                )
                svid.save(west.directory)
                await wait_for("west to present its new SVID", _presents(east, west, new_ca), 10)
        await wait_for("traffic after the rotation", _more(traffic, 20), 10)
        # (b) a replay: the federation serves west's previous bundle (lower sequence) with its
        # genuine, once valid update: east refuses to go back.
        await _serve_tampered(world, td.name, both)
        nack = await _wait_nack(world, "east")
        assert "no valid signed update vouches" in nack["nack_error"], nack
        assert _accepted(east, td).x509_authorities == new_root
        # (b) another cluster's update in west's slot: east's own key signed it, for east's
        # trust domain; it vouches for nothing of west's.
        key, kid = ClientStateDir(east.state_dir / "federation").load_or_create_jwt_key()
        theirs = TrustBundle(TrustDomain(east.trust_domain), (), {kid: key.public_key()}, 9)
        keys = dict(parse_bundle(td, both[1]).jwt_authorities)
        rogue = TrustBundle(td, rogue_ca.bundle().x509_authorities, keys, both[0] + 5)
        signed = sign_bundle_update(theirs, key, kid).decode()
        await _serve_tampered(world, td.name, (rogue.sequence, rogue.to_json(), signed))
        nack = await _wait_nack(world, "east", beyond=nack["nacked_version"])
        assert "is for trust domain" in nack["nack_error"], nack
        assert _accepted(east, td).x509_authorities == new_root
        await wait_for("traffic after the replay", _more(traffic, 20), 10)
        nursery.cancel_scope.cancel()
    assert not traffic.failures, traffic.failures[:5]
    assert traffic.answers["west"] == traffic.total > 50


async def _serve_tampered(world: World, td: str, row: tuple[int, str, str | None]) -> None:
    """Simulate a compromised federation: write ``row`` into its store, bypassing the API's
    checks, and restart it so it serves it."""
    await world.stop(world.federation)
    world.write_bundle_row(td, row)
    await world.start_federation()


async def _wait_nack(world: World, cluster: str, beyond: int = 0) -> dict[str, Any]:
    async def nacked() -> bool:
        try:
            version = (await world.status_now())[cluster]["nacked_version"]
        except httpx.HTTPError:
            return False
        return version is not None and version > beyond

    await wait_for(f"{cluster} to NACK", nacked, 20)
    row: dict[str, Any] = (await world.status())[cluster]  # what `isthmus status` shows
    return row


def _acked_beyond(world: World, cluster: str, version: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        try:
            row = (await world.status_now())[cluster]
        except httpx.HTTPError:
            return False
        served = row["snapshot_version"]
        return bool(served and served > version and row["acked_version"] == served)

    return check


def _refused_gauge(world: World, gw: Gateway, value: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        text = (await world.admin(gw, "/metrics")).text
        return f"isthmus_federation_snapshot_refused {value}.0" in text

    return check


def _accepted(gw: Gateway, td: TrustDomain) -> TrustBundle:
    """The bundle of ``td`` that ``gw`` accepted with its last good (persisted) snapshot."""
    persisted = ClientStateDir(gw.state_dir / "federation").load_snapshot()
    assert persisted is not None
    return parse_bundle(td, persisted.bundles[td.name])


def _presents(
    client: Gateway, server: Gateway, ca: CertificateAuthority
) -> Callable[[], Awaitable[bool]]:
    """Whether a fresh mTLS handshake from ``client``'s identity to ``server``'s inbound port,
    trusting what ``client`` accepted for ``server``'s trust domain, sees an SVID of ``ca``."""
    roots = _accepted(client, TrustDomain(server.trust_domain)).x509_authorities
    cadata = "".join(cert.public_bytes(serialization.Encoding.PEM).decode() for cert in roots)

    def handshake() -> bool:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.check_hostname = False
        ctx.load_verify_locations(cadata=cadata)
        ctx.load_cert_chain(client.directory / "svid.pem", client.directory / "svid.key")
        ctx.set_alpn_protocols(["h2"])
        address = ("127.0.0.1", server.spec.inbound_port)
        with socket.create_connection(address, timeout=5) as sock, ctx.wrap_socket(sock) as tls:
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der).issuer == ca.issuer.subject

    async def check() -> bool:
        return await trio.to_thread.run_sync(handshake)

    return check
