"""Lightweight simulated gateways: real cluster registrations, reports, long-poll watches, ACKs.

Each :class:`SimGateway` is one cluster with its own trust domain, CA root and ``jwt-svid`` key
(P-256, generated in about a millisecond), joined with its own single-use token. By default each
gateway has its own HTTP/2 connection, as a real gateway's ``FederationClient`` does;
``per_connection`` > 1 shares one ``httpx.AsyncClient`` among that many gateways (keep it at or
below 30 so that a gateway's watch, report and ACK streams fit the server's 100 concurrent
streams per connection: httpx queues streams beyond that instead of opening a connection).
Measured on 2026-11-25: with 30 gateways per connection a report at 1/s took ~450 ms instead of
~5-10 ms, an artefact of sharing (client or server side), so sharing is not the default.

Reports and ACKs go through :class:`federation.client.FederationClient`, the client real
gateways use. The watch is a raw long-poll ``GET /v1/clusters/{c}/snapshot?after=V``: a
simulated gateway only reads the version header and looks for one byte pattern in the body, so
the benchmark measures the federation rather than pydantic parsing megabyte snapshots.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import trio
from cryptography.hazmat.primitives.asymmetric import ec

from federation.client import FederationClient, FederationClientError, JoinRecord
from federation.model.api import (
    EndpointHealth,
    HealthReport,
    JoinRequest,
    JoinResponse,
    ServiceHealth,
)
from federation.model.routing import Locality
from federation.trust import CertificateAuthority, SpiffeId, TrustBundle, TrustDomain
from federation.trust.jwt import mint_jwt_svid

SERVICE = "echo.bench"
GATEWAYS_PER_CONNECTION = 1
JWT_TTL_S = 300.0
_RETRY_S = 0.2


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
    """One simulated gateway: identity, shared HTTP/2 client, the federation client on it."""

    ident: Identity
    http: httpx.AsyncClient
    client: FederationClient | None = None
    healthy: bool = True
    sequence: int = 0
    _token: tuple[str, float] = ("", 0.0)

    @property
    def name(self) -> str:
        return self.ident.name

    def bearer(self) -> dict[str, str]:
        now = time.time()
        if now >= self._token[1]:
            token = mint_jwt_svid(
                self.ident.jwt_key,
                self.ident.kid,
                SpiffeId.parse(f"spiffe://{self.ident.trust_domain}/isthmus/gateway/{self.name}"),
                "isthmus-federation",
                now=datetime.fromtimestamp(now, UTC),
                ttl=timedelta(seconds=JWT_TTL_S),
            )
            self._token = (token, now + JWT_TTL_S / 2)
        return {"authorization": f"Bearer {self._token[0]}"}

    def report_body(self) -> HealthReport:
        self.sequence += 1
        endpoint = EndpointHealth(address=self.ident.address, healthy=self.healthy)
        service = ServiceHealth(name=SERVICE, endpoints=(endpoint,), allowed_sources=("*",))
        return HealthReport(sequence=self.sequence, sent_at=time.time(), services=(service,))


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


async def send_report(gw: SimGateway, obs: Observations) -> bool:
    """One report; logs (completed_at, latency) on success, counts errors otherwise."""
    assert gw.client is not None
    body = gw.report_body()
    started = time.monotonic()
    try:
        await gw.client.report(body)
    except (FederationClientError, httpx.HTTPError) as err:
        obs.error("report", err)
        return False
    done = time.monotonic()
    obs.report_log.append((done, done - started))
    return True


async def report_loop(
    gw: SimGateway, obs: Observations, interval_s: float, offset_s: float, stop: trio.Event
) -> None:
    """Report every ``interval_s`` (first after ``offset_s``) until ``stop`` is set; never
    bursts to catch up. Stopping waits for the report in flight instead of cancelling it: a
    cancelled request resets its HTTP/2 stream, and the server may then close the connection
    that other simulated gateways share."""
    with trio.move_on_after(offset_s):
        await stop.wait()
    next_at = trio.current_time()
    while not stop.is_set():
        await send_report(gw, obs)
        next_at = max(next_at + interval_s, trio.current_time())
        with trio.move_on_at(next_at):
            await stop.wait()


async def watch_loop(gw: SimGateway, obs: Observations) -> None:
    """Long-poll the snapshot forever; ACK every new version as soon as it arrives."""
    assert gw.client is not None
    path, after = f"/v1/clusters/{gw.name}/snapshot", -1
    while True:
        try:
            response = await gw.http.get(path, params={"after": after}, headers=gw.bearer())
        except httpx.HTTPError as err:
            obs.error("watch", err)
            await trio.sleep(_RETRY_S)
            continue
        if response.status_code == 204:
            continue
        if response.status_code != 200:
            obs.error("watch", f"{response.status_code} {response.text[:160]}")
            await trio.sleep(_RETRY_S)
            continue
        version = int(response.headers["x-snapshot-version"])
        routed = obs.marker in response.content
        obs.on_receive(gw.name, routed, time.monotonic())
        try:
            await gw.client.ack(version, True)
        except (FederationClientError, httpx.HTTPError) as err:
            obs.error("ack", err)
            continue
        obs.on_ack(gw.name, routed, time.monotonic())
        after = version


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
            if await send_report(gateways[index % len(gateways)], obs):
                done += 1
            index += workers

    with trio.move_on_after(duration_s + 10):  # last resort: cancel what is still in flight
        async with trio.open_nursery() as nursery:
            for start in range(workers):
                nursery.start_soon(worker, start)
    return done
