"""A gateway joined to a federation: join once, then reports, snapshots and own-bundle updates.

Two steps, both driven by :func:`gateway.run.serve_gateway`:

1. :func:`prepare_federation` (before any listener starts): load the client state from the
   gateway's state directory, or — first start — join with the single-use token: the token pins
   the federation's TLS CA by fingerprint, and the gateway registers its cluster with its trust
   bundle (CA roots + the ``jwt-svid`` key it authenticates with), gateway addresses, locality,
   capacity and cost labels. The credentials are written (0600) to the state directory, so a
   restart needs no token. A refused token (reused, expired, tampered, for another cluster)
   raises :class:`~gateway.errors.FederationJoinError` with the federation's reason; an
   unreachable federation is retried with jittered exponential backoff.
2. :func:`run_federation_link` (inside the gateway's nursery): apply the persisted last good
   snapshot first (static stability: a restart routes even with the federation down), then
   keep one full-duplex snapshot stream open: a report every interval and the ACK/NACK of each
   version go up, snapshots are pushed down (verify bundle updates, apply, persist, ACK; NACK
   what fails — :class:`federation.client.FederationLink`; REST long-polls if the federation
   has no stream), and publish a signed update of the
   cluster's own bundle whenever its bundle file gains a higher sequence (CA rotation), and
   fetch each ``federation.foreign_trust_domains`` bundle itself (:mod:`gateway.foreign_trust`;
   whatever the federation serves for those domains is ignored).
"""

from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import trio
from cryptography.hazmat.primitives.asymmetric import ec

from federation.client import (
    ClientStateDir,
    FederationClient,
    FederationLink,
    FederationUnavailable,
    JoinRecord,
    backoff_delay,
    join_federation,
    registration_bundle,
)
from federation.errors import FederationError
from federation.model.api import HealthReport, Snapshot
from federation.service.join import JoinToken
from federation.trust import (
    BundleSet,
    TrustBundle,
    TrustDomain,
    parse_bundle,
    sign_bundle_update,
)
from gateway.config import FederationSettings, GatewayConfig
from gateway.errors import FederationJoinError, GatewayError, IdentityError
from gateway.foreign_trust import ForeignTrust
from gateway.identity import GatewayIdentity
from gateway.probes import peer_endpoints
from gateway.reload import file_stamp, load_routing_model
from gateway.report import build_health_report, exported_services

if TYPE_CHECKING:
    from gateway.run import RunningGateway

log = logging.getLogger(__name__)

#: A peer verdict no longer refreshed by probes (the peer left this gateway's table) is still
#: reported for this many report intervals, so a link-down report does not flap.
PEER_VERDICT_INTERVALS = 10


def default_state_dir(cluster: str) -> Path:
    """``$ISTHMUS_HOME/gateways/<cluster>``, else ``~/.isthmus/gateways/<cluster>``."""
    home = os.environ.get("ISTHMUS_HOME")
    return (Path(home) if home else Path.home() / ".isthmus") / "gateways" / cluster


def state_dir_of(config: GatewayConfig) -> Path:
    """Where this gateway keeps its federation credentials and last good snapshot."""
    fed = config.federation
    if fed is not None and fed.state_dir is not None:
        return fed.state_dir
    return default_state_dir(config.cluster)


def federation_wanted(config: GatewayConfig, token: str | None) -> bool:
    """Federated mode: a token (CLI or config), a ``federation:`` section, or an earlier join
    recorded in the default state directory."""
    if token or config.join_token or config.federation is not None:
        return True
    return (state_dir_of(config) / "federation" / "federation.json").exists()


@dataclass(frozen=True)
class FederationSession:
    """What :func:`prepare_federation` hands to :func:`run_federation_link`."""

    settings: FederationSettings
    state: ClientStateDir
    record: JoinRecord
    jwt_key: ec.EllipticCurvePrivateKey
    kid: str
    own_bundle: TrustBundle

    @property
    def report_interval_s(self) -> float:
        return self.settings.report_interval_s or self.record.report_interval_s


def own_file_bundle(config: GatewayConfig, identity: GatewayIdentity) -> TrustBundle:
    """The cluster's own bundle as its bundle file holds it now (CA roots)."""
    own = identity.file_bundles.get(TrustDomain.parse(config.trust_domain))
    if own is None:  # load_identity_files guarantees it; keep mypy and readers honest
        raise IdentityError(f"identity.bundles: no bundle for {config.trust_domain}")
    return own


def _addresses(config: GatewayConfig, settings: FederationSettings) -> tuple[str, ...]:
    if settings.advertise_addresses:
        return settings.advertise_addresses
    listen = config.listeners
    if not listen.inbound_port or listen.bind in ("0.0.0.0", "::"):  # noqa: S104
        raise FederationJoinError(
            "federation.advertise_addresses: set the host:port peers dial to reach this "
            f"gateway (listeners.bind {listen.bind!r}, inbound_port {listen.inbound_port})"
        )
    host = f"[{listen.bind}]" if ":" in listen.bind else listen.bind
    return (f"{host}:{listen.inbound_port}",)


async def _join(
    config: GatewayConfig, settings: FederationSettings, token: str, bundle: TrustBundle
) -> JoinRecord:
    try:
        named = JoinToken.decode(token).cluster
    except FederationError as err:
        raise FederationJoinError(f"cluster {config.cluster}: join refused: {err}") from err
    if named != config.cluster:
        raise FederationJoinError(
            f"the join token is for cluster {named!r}, but this gateway is {config.cluster!r}; "
            f"create one with 'isthmus federation token create --cluster {config.cluster}'"
        )
    rng = random.Random()  # noqa: S311 - jitter, not crypto
    for attempt in range(10**9):
        try:
            return await join_federation(
                token,
                trust_bundle=bundle,
                gateway_addresses=_addresses(config, settings),
                locality=config.locality,
                capacity=settings.capacity,
                cost=settings.cost,
                labels=settings.labels,
            )
        except FederationUnavailable as err:
            delay = backoff_delay(
                attempt, rng, base_s=settings.backoff_base_s, cap_s=settings.backoff_cap_s
            )
            log.warning("cannot join yet (%s); retrying in %.1fs", err, delay)
            await trio.sleep(delay)
        except FederationError as err:
            raise FederationJoinError(f"cluster {config.cluster}: join refused: {err}") from err
    raise AssertionError("unreachable")  # pragma: no cover


async def prepare_federation(
    config: GatewayConfig, identity: GatewayIdentity, token: str | None
) -> FederationSession:
    """Load the gateway's federation state or join (see the module docstring). Raises
    :class:`FederationJoinError` (refused token, not joined and no token, other cluster's
    state) or :class:`GatewayError` for an unreadable state directory."""
    settings = config.federation or FederationSettings()
    state = ClientStateDir(state_dir_of(config) / "federation")
    try:
        jwt_key, kid = state.load_or_create_jwt_key()
        record = state.load_join()
    except FederationError as err:
        raise GatewayError(f"gateway state: {err}") from err
    own = registration_bundle(own_file_bundle(config, identity), jwt_key, kid)
    token = token or config.join_token
    if record is None:
        if not token:
            raise FederationJoinError(
                f"cluster {config.cluster} has not joined a federation (no state in "
                f"{state.path}); pass --join TOKEN (from 'isthmus federation token create')"
            )
        record = await _join(config, settings, token, own)
        state.save_join(record)
        log.info("joined the federation at %s as %s", record.federation_url, record.cluster)
    elif token:
        log.info("already joined (state in %s): the join token is not used", state.path)
    if record.cluster != config.cluster or record.trust_domain != config.trust_domain:
        raise FederationJoinError(
            f"{state.join_path}: joined as {record.cluster} ({record.trust_domain}), but this "
            f"gateway is {config.cluster} ({config.trust_domain}); use another state_dir"
        )
    return FederationSession(settings, state, record, jwt_key, kid, own)


class _Reporter:
    """Builds each interval's report from the running gateway (the link's ``report_source``)."""

    def __init__(self, running: RunningGateway, session: FederationSession) -> None:
        self._running = running
        self._session = session
        self._sequence = 0
        self._stamp = file_stamp(running.config.routing_file)
        self._exports = load_routing_model(running.config)
        self._peers: dict[str, tuple[bool, float]] = {}
        self._last = HealthReport(sequence=0, sent_at=time.time())

    def _refresh_exports(self) -> None:
        """The routing file declares the exports; re-read it when it changed."""
        stamp = file_stamp(self._running.config.routing_file)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            self._exports = load_routing_model(self._running.config)
        except GatewayError as err:
            log.error("exports unchanged, routing file rejected: %s", err)

    def _peer_view(self, now: float) -> dict[str, bool]:
        engine = self._running.engine
        current: dict[str, bool] = {}
        for endpoint in peer_endpoints(engine.table):
            cluster = endpoint.locality.cluster
            current[cluster] = current.get(cluster, False) or engine.state.health.is_healthy(
                endpoint.key
            )
        for cluster, ok in current.items():
            self._peers[cluster] = (ok, now)
        keep = PEER_VERDICT_INTERVALS * self._session.report_interval_s
        self._peers = {c: v for c, v in self._peers.items() if now - v[1] <= keep}
        return {cluster: ok for cluster, (ok, _) in self._peers.items()}

    def __call__(self) -> HealthReport:
        """This interval's report. Never raises (the link would stop): on a bug, the previous
        report's content is sent again with the next sequence number."""
        self._sequence += 1
        try:
            self._last = self._build()
        except Exception:
            log.exception("health report could not be built; repeating the previous one")
            return self._last.model_copy(update={"sequence": self._sequence})
        return self._last

    def _build(self) -> HealthReport:
        self._refresh_exports()
        engine = self._running.engine
        now = trio.current_time()
        names = exported_services(self._exports)
        links = self._running.links
        return build_health_report(
            self._exports,
            sequence=self._sequence,
            sent_at=time.time(),
            healthy=lambda service, key: engine.state.is_healthy(service, key, now),
            in_flight=engine.state.in_flight,
            load=self._running.load.sample(names, now),
            peers=self._peer_view(now),
            capacity=self._session.settings.capacity,
            links=links.sample(links.seen(), now),
        )


async def _publish_own_bundle(
    link: FederationLink, session: FederationSession, running: RunningGateway
) -> None:
    """Every interval: if the own bundle file holds a higher sequence than the federation
    serves, sign it (with the ``jwt-svid`` key the federation and peers already trust) and
    publish it. Failures are retried next interval."""
    td = TrustDomain.parse(running.config.trust_domain)
    published = 0
    while True:
        try:
            wanted = registration_bundle(
                own_file_bundle(running.config, running.identity), session.jwt_key, session.kid
            )
            served = link.active.bundles if link.active is not None else session.record.bundles
            current = parse_bundle(td, served[td.name]).sequence if td.name in served else 0
            if wanted.sequence > max(current, published):
                await link.client.publish_bundle_update(
                    sign_bundle_update(wanted, session.jwt_key, session.kid)
                )
                published = wanted.sequence
                log.info("published bundle of %s, sequence %d", td, wanted.sequence)
        except (FederationError, GatewayError) as err:
            log.warning("bundle update of %s not published yet: %s", td, err)
        _export_link_metrics(link, running)
        await trio.sleep(session.report_interval_s)


def _export_link_metrics(link: FederationLink, running: RunningGateway) -> None:
    view = link.describe()
    metrics = running.metrics
    active, seen = view["active_version"], view["last_seen_version"]
    if isinstance(active, int):
        metrics.federation_version.set(active)
    metrics.federation_refused.set(1 if seen != active and view["last_error"] else 0)
    metrics.federation_failures.set(link.failures)


async def run_federation_link(
    session: FederationSession,
    running: RunningGateway,
    *,
    task_status: trio.TaskStatus[FederationLink] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Follow the federation until cancelled (see the module docstring). ``started`` with the
    link once the persisted snapshot (if any) is applied. Owns its client and tasks."""
    settings = session.settings
    foreign = ForeignTrust(
        settings.foreign_trust_domains, own_trust_domain=running.config.trust_domain
    )

    def apply(snapshot: Snapshot, bundles: BundleSet) -> None:
        running.apply_snapshot(snapshot, foreign.overlay(bundles))

    def foreign_fetched() -> None:  # new handshakes trust the self-fetched bundles at once
        identity = running.identity
        identity.set_federated_bundles(foreign.overlay(identity.federated_bundles))

    async with FederationClient(
        session.record, jwt_key=session.jwt_key, kid=session.kid, long_poll_s=settings.long_poll_s
    ) as client:
        link = FederationLink(
            client,
            session.state,
            own_bundle=session.own_bundle,
            apply=apply,
            report_source=_Reporter(running, session),
            rng=random.Random(),  # noqa: S311 - jitter, not crypto
            backoff_base_s=settings.backoff_base_s,
            backoff_cap_s=settings.backoff_cap_s,
            self_fetched_trust_domains=foreign.names,
        )
        if link.restore():
            assert link.active is not None
            log.info("serving the persisted snapshot v%d until the federation answers",
                     link.active.version)  # fmt: skip
        running.status.federation = lambda: {
            **link.describe(),
            "foreign_trust_domains": foreign.describe(),
        }
        async with trio.open_nursery() as nursery:
            nursery.start_soon(link.follow, session.report_interval_s)
            nursery.start_soon(_publish_own_bundle, link, session, running)
            nursery.start_soon(foreign.run, foreign_fetched)
            task_status.started(link)
