"""Lightweight simulated gateways: real cluster registrations, one snapshot stream each.

Each :class:`SimGateway` is one cluster with its own trust domain, CA root and ``jwt-svid`` key
(P-256, generated in about a millisecond), joined with its own single-use token (``POST
/v1/join`` over httpx, shared by ``per_connection`` gateways; joins only).

After joining, each gateway keeps ONE full-duplex HTTP/2 stream open on its own connection, as
a real gateway's ``FederationLink`` does (``FederationClient.open_stream``: raw ``h2`` over trio
TLS 1.3, the pinned CA, a JWT-SVID at open): reports and ACKs go up as NDJSON lines, snapshots
(routing) and bundles come down. A simulated gateway does not parse snapshots with pydantic: it
reads the version and looks for one byte pattern (``"g00000":1`` in the weights), so the
benchmark measures the federation. Every ACK carries an ``id`` and the federation answers
``ok`` once it is stored: that answer is what "ACKed" means here. Reports go up as a real
gateway sends them (no answer asked), except one in :data:`ANSWER_EVERY`, whose ``ok``
confirms it and the ones before it on the stream (a stream is handled in order): reports are
counted when confirmed, and report latency is that of the answered ones.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import trio
from cryptography.hazmat.primitives.asymmetric import ec

from federation.client import FederationClient, FederationClientError, JoinRecord
from federation.client.h2duplex import DuplexError
from federation.client.stream import BundleState, SnapshotStream
from federation.model.api import (
    EndpointHealth,
    HealthReport,
    JoinRequest,
    JoinResponse,
    ServiceHealth,
)
from federation.model.routing import Locality
from federation.trust import CertificateAuthority, TrustBundle, TrustDomain

SERVICE = "echo.bench"
GATEWAYS_PER_CONNECTION = 1
_RETRY_S = 0.2
#: One report in this many asks for an answer (latency sample, delivery confirmation); the
#: others are sent as a real gateway sends every report, without one.
ANSWER_EVERY = 10
#: How long a report or ACK waits for the federation's answer before counting as an error.
_ANSWER_S = 30.0


@dataclass(frozen=True)
class Identity:
    """A simulated cluster's identity material (the private keys stay in this process)."""

    name: str
    trust_domain: str
    jwt_key: ec.EllipticCurvePrivateKey
    kid: str
    bundle: TrustBundle
    address: str
    region: str


def make_identity(index: int) -> Identity:
    name = f"g{index:05d}"
    td = TrustDomain(f"{name}.bench.isthmus.test")
    ca = CertificateAuthority.create(td, now=datetime.now(UTC))
    key = ec.generate_private_key(ec.SECP256R1())
    bundle = TrustBundle(td, (ca.root,), {f"{name}-jwt-1": key.public_key()}, 1)
    port = 20000 + index
    return Identity(
        name, td.name, key, f"{name}-jwt-1", bundle, f"127.0.0.1:{port}", f"r{index % 8}"
    )


@dataclass
class Observations:
    """What the watchers and reporters saw, with ``time.monotonic()`` timestamps."""

    marker: bytes
    expected: int
    last_new_version_at: float = 0.0
    flip_at: float | None = None
    want_routed: bool = True
    received: dict[str, float] = field(default_factory=dict)
    acked: dict[str, float] = field(default_factory=dict)
    routed: dict[str, bool] = field(default_factory=dict)
    report_log: list[tuple[float, float]] = field(default_factory=list)
    #: (when the federation confirmed them, how many reports): an ``ok`` confirms its report
    #: and every report sent before it on the same stream (one stream is handled in order)
    report_done: list[tuple[float, int]] = field(default_factory=list)
    #: when each report was written to its stream
    report_sent: list[float] = field(default_factory=list)
    report_errors: int = 0
    watch_errors: int = 0
    ack_errors: int = 0
    all_acked: trio.Event = field(default_factory=trio.Event)
    error_samples: list[str] = field(default_factory=list)

    def error(self, kind: str, what: object) -> None:
        """Count an error of ``kind`` and keep the first few descriptions."""
        setattr(self, f"{kind}_errors", getattr(self, f"{kind}_errors") + 1)
        if len(self.error_samples) < 5:
            now = time.monotonic()
            when = "" if self.flip_at is None else f" ({now - self.flip_at:+.1f} s from the change)"
            self.error_samples.append(f"{kind}{when}: {what!r}"[:240])

    def start_flip(self, at: float, want_routed: bool) -> None:
        """From ``at`` on, time every watcher until it has received and ACKed a snapshot that
        does (``want_routed``) or does not route to the flipped cluster."""
        self.flip_at, self.want_routed = at, want_routed
        self.received, self.acked, self.all_acked = {}, {}, trio.Event()

    def on_receive(self, name: str, routed: bool, at: float) -> None:
        self.last_new_version_at = at
        self.routed[name] = routed
        if self.flip_at is not None and routed == self.want_routed:
            self.received.setdefault(name, at)

    def on_ack(self, name: str, routed: bool, at: float) -> None:
        if self.flip_at is not None and routed == self.want_routed and name not in self.acked:
            self.acked[name] = at
            if len(self.acked) >= self.expected:
                self.all_acked.set()


@dataclass
class SimGateway:
    """One simulated gateway: identity, the httpx client it joined with, its stream."""

    ident: Identity
    http: httpx.AsyncClient
    client: FederationClient | None = None
    healthy: bool = True
    sequence: int = 0
    stream: SnapshotStream | None = None
    #: message id -> (event set when answered, what it was: ("report",) or ("ack", routed))
    pending: dict[int, tuple[trio.Event, tuple[object, ...]]] = field(default_factory=dict)
    next_id: int = 0
    unconfirmed: int = 0
    after: int = -1
    bundles: BundleState = field(default_factory=BundleState)
    snapshot_bytes: int = 0
    bundles_bytes: int = 0
    #: every bundles and bundles_delta byte received (all streams of this gateway)
    bundles_received: int = 0
    stream_ready: trio.Event = field(default_factory=trio.Event)

    @property
    def name(self) -> str:
        return self.ident.name

    def report_body(self) -> HealthReport:
        self.sequence += 1
        endpoint = EndpointHealth(address=self.ident.address, healthy=self.healthy)
        service = ServiceHealth(name=SERVICE, endpoints=(endpoint,), allowed_sources=("*",))
        return HealthReport(sequence=self.sequence, sent_at=time.time(), services=(service,))

    def expect(self, what: tuple[object, ...]) -> tuple[int, trio.Event]:
        self.next_id += 1
        done = trio.Event()
        self.pending[self.next_id] = (done, what)
        return self.next_id, done


def shared_clients(
    url: str, verify: object, count: int, long_poll_s: float
) -> list[httpx.AsyncClient]:
    """``count`` HTTP/2 clients (one connection each) pinned to the federation's CA."""
    timeout = httpx.Timeout(60.0, read=long_poll_s + 30.0)
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    return [
        httpx.AsyncClient(base_url=url, verify=verify, http2=True, timeout=timeout, limits=limits)  # type: ignore[arg-type]
        for _ in range(count)
    ]


def connections_for(gateways: int, per_connection: int = GATEWAYS_PER_CONNECTION) -> int:
    return max(1, math.ceil(gateways / per_connection))


async def join_one(
    gw: SimGateway, token: str, ca_pem: str, fingerprint: str, long_poll_s: float
) -> None:
    """``POST /v1/join`` on the shared connection; sets ``gw.client``. Raises BenchJoinError."""
    ident = gw.ident
    request = JoinRequest(
        token=token,
        trust_domain=ident.trust_domain,
        trust_bundle=ident.bundle.to_json(),
        gateway_addresses=(ident.address,),
        locality=Locality(cloud="local", region=ident.region),
        capacity=100,
    )
    response = await gw.http.post(
        "/v1/join",
        content=request.model_dump_json(),
        headers={"content-type": "application/json"},
    )
    if response.status_code != 201:
        raise JoinFailed(f"join of {ident.name}: {response.status_code} {response.text[:300]}")
    joined = JoinResponse.model_validate_json(response.content)
    record = JoinRecord(
        federation_url=str(gw.http.base_url).rstrip("/"),
        ca_pem=ca_pem,
        ca_fingerprint=fingerprint,
        cluster=joined.cluster,
        trust_domain=joined.trust_domain,
        audience=joined.audience,
        max_token_ttl_s=joined.max_token_ttl_s,
        report_interval_s=joined.report_interval_s,
    )
    gw.client = FederationClient(
        record, jwt_key=ident.jwt_key, kid=ident.kid, long_poll_s=long_poll_s, http=gw.http
    )


class JoinFailed(RuntimeError):
    """A simulated cluster could not join (the message has the server's answer)."""


async def send_report(
    gw: SimGateway,
    obs: Observations,
    *,
    answered: bool = True,
    waiters: trio.Nursery | None = None,
) -> bool:
    """One report on the gateway's stream. ``answered``: with an ``id``, waiting (bounded) for
    the federation's ``ok``, which confirms it and the unanswered ones sent before it (logged
    in ``obs.report_done``; its latency in ``obs.report_log``) — in a task of ``waiters`` if
    given (then this returns once it is sent, as a real gateway, which waits for no answer,
    goes on reporting every interval); else sent as a real gateway sends it, confirmed by the
    next answered one."""
    stream = gw.stream
    if stream is None:
        obs.error("report", f"{gw.name}: no stream open")
        await trio.sleep(_RETRY_S)
        return False
    body = gw.report_body()
    if not answered:
        try:
            await stream.send_report(body)
        except FederationClientError as err:
            obs.error("report", err)
            return False
        gw.unconfirmed += 1
        obs.report_sent.append(time.monotonic())
        return True
    message_id, done = gw.expect(("report",))
    confirms, gw.unconfirmed = gw.unconfirmed + 1, 0
    started = time.monotonic()
    try:
        await stream.send_report(body, message_id)
    except FederationClientError as err:
        gw.pending.pop(message_id, None)
        obs.error("report", err)
        return False
    obs.report_sent.append(time.monotonic())
    if waiters is not None:
        waiters.start_soon(_answer_of, gw, obs, message_id, done, started, confirms)
        return True
    return await _answer_of(gw, obs, message_id, done, started, confirms)


async def _answer_of(
    gw: SimGateway,
    obs: Observations,
    message_id: int,
    done: trio.Event,
    started: float,
    confirms: int,
) -> bool:
    """Wait (bounded) for the ``ok`` of report ``message_id``; log its latency."""
    with trio.move_on_after(_ANSWER_S):
        await done.wait()
    gw.pending.pop(message_id, None)
    if not done.is_set():
        obs.error("report", f"{gw.name}: no answer within {_ANSWER_S:.0f} s")
        return False
    finished = time.monotonic()
    obs.report_log.append((finished, finished - started))
    obs.report_done.append((finished, confirms))
    return True


async def report_loop(
    gw: SimGateway, obs: Observations, interval_s: float, offset_s: float, stop: trio.Event
) -> None:
    """Report every ``interval_s`` (first after ``offset_s``) until ``stop`` is set; never
    bursts to catch up, never waits for an answer before the next report (a real gateway asks
    for none: had the simulated one waited, a federation slow to answer would have been a
    gateway silent for as long, and its lease would lapse). Stopping finishes the report being
    written instead of cancelling it (a cancelled request resets its HTTP/2 stream, and the
    server may then close the connection that other simulated gateways share); answers still
    due are no longer waited for (waiting held the next phase up while leases lapsed)."""
    with trio.move_on_after(offset_s):
        await stop.wait()
    with trio.move_on_after(_ANSWER_S):
        await gw.stream_ready.wait()
    next_at = trio.current_time()
    async with trio.open_nursery() as waiters:
        while not stop.is_set():
            # gateways answer in different seconds, so every second sees ~N/10 answers
            phase = int(gw.name[1:]) % ANSWER_EVERY
            answered = gw.sequence % ANSWER_EVERY == phase
            await send_report(gw, obs, answered=answered, waiters=waiters)
            next_at = max(next_at + interval_s, trio.current_time())
            with trio.move_on_at(next_at):
                await stop.wait()
        waiters.cancel_scope.cancel()


_SNAPSHOT_HEAD = b'{"type":"snapshot","version":'
#: A routing delta (the sim gateway ACKs it by version, as it does a full routing).
_DELTA_HEAD = b'{"type":"delta","version":'
_OK_HEAD = b'{"type":"ok","id":'
_BUNDLES_HEAD = b'{"type":"bundles","digest":"'
_BUNDLES_DELTA_HEAD = b'{"type":"bundles_delta","digest":"'


async def _on_snapshot(
    gw: SimGateway, stream: SnapshotStream, line: bytes, obs: Observations
) -> None:
    start = len(_SNAPSHOT_HEAD) if line.startswith(_SNAPSHOT_HEAD) else len(_DELTA_HEAD)
    version = int(line[start : line.index(b",", start)])
    routed = obs.marker in line
    gw.snapshot_bytes, gw.after = len(line), version
    obs.on_receive(gw.name, routed, time.monotonic())
    message_id, _ = gw.expect(("ack", routed))
    try:
        await stream.send_ack(version, True, message_id=message_id)
    except FederationClientError as err:
        gw.pending.pop(message_id, None)
        obs.error("ack", err)


def _on_ok(gw: SimGateway, line: bytes, obs: Observations) -> None:
    message_id = int(line[len(_OK_HEAD) : line.index(b"}")])
    done, what = gw.pending.pop(message_id, (None, ()))
    if done is None:
        return
    done.set()
    if what[0] == "ack":
        obs.on_ack(gw.name, bool(what[1]), time.monotonic())


async def _read_stream(gw: SimGateway, stream: SnapshotStream, obs: Observations) -> None:
    """Dispatch every line until the stream ends (raises what ended it)."""
    while True:
        line = await stream.duplex.receive_line()
        if line.startswith(_SNAPSHOT_HEAD) or line.startswith(_DELTA_HEAD):
            await _on_snapshot(gw, stream, line, obs)
        elif line.startswith(_OK_HEAD):
            _on_ok(gw, line, obs)
        elif line.startswith(_BUNDLES_HEAD) or line.startswith(_BUNDLES_DELTA_HEAD):
            # keep its digest, as a real gateway does (a delta is always against the set this
            # stream sent last, which the simulated gateway holds by construction)
            head = len(_BUNDLES_HEAD if line.startswith(_BUNDLES_HEAD) else _BUNDLES_DELTA_HEAD)
            if head == len(_BUNDLES_HEAD):
                gw.bundles_bytes = len(line)
            gw.bundles_received += len(line)
            gw.bundles.digest = line[head : line.index(b'"', head)].decode()
        elif line.startswith(b'{"type":"end"'):
            return
        else:
            obs.error("watch", line[:200])


async def watch_loop(gw: SimGateway, obs: Observations, opening: trio.Semaphore) -> None:
    """Keep the gateway's stream open forever (reopen after a failure or a token expiry);
    ACK every new version as soon as it arrives. ``opening`` bounds how many gateways open
    their stream (TLS handshake, JWT check, bundles) at once: real gateways do not all start
    in the same second."""
    assert gw.client is not None
    while True:
        async with trio.open_nursery() as nursery:
            try:
                async with opening:
                    stream = await gw.client.open_stream(
                        nursery, after=gw.after, bundles=gw.bundles
                    )
            except FederationClientError as err:
                obs.error("watch", err)
                await trio.sleep(_RETRY_S)
                continue
            gw.stream = stream
            gw.stream_ready.set()
            try:
                await _read_stream(gw, stream, obs)
            except DuplexError as err:
                obs.error("watch", err)
            finally:
                gw.stream = None
                await stream.aclose()
            nursery.cancel_scope.cancel()


async def saturate(
    gateways: list[SimGateway], obs: Observations, workers: int, duration_s: float
) -> int:
    """``workers`` back-to-back reporters over all gateways for ``duration_s`` (then each
    finishes its request in flight); returns how many reports succeeded."""
    done = 0
    deadline = trio.current_time() + duration_s

    async def worker(start: int) -> None:
        nonlocal done
        index = start
        while trio.current_time() < deadline:
            gw = gateways[index % len(gateways)]
            for _ in range(ANSWER_EVERY - 1):
                await send_report(gw, obs, answered=False)
            if await send_report(gw, obs):
                done += ANSWER_EVERY
            index += workers

    with trio.move_on_after(duration_s + 10):  # last resort: cancel what is still in flight
        async with trio.open_nursery() as nursery:
            for start in range(workers):
                nursery.start_soon(worker, start)
    return done
