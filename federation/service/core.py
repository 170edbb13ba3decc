"""What the federation API does, independent of HTTP: join, reports, ACKs, bundles, status.

:class:`FederationService` validates everything *before* it writes, so a refused request stores
nothing (a join token is consumed only once the rest of the join request has been checked).
Errors are :class:`~federation.service.errors.ServiceError` subclasses carrying an HTTP status.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from federation.model.api import (
    Ack,
    BundleUpdateRequest,
    FederationStatus,
    HealthReport,
    JoinRequest,
    JoinResponse,
    Timeline,
    TimelineEvent,
)
from federation.service.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    ServiceError,
)
from federation.service.foreign import ForeignBundles
from federation.service.join import (
    DEFAULT_TOKEN_TTL_S,
    STORE_REASONS,
    JoinToken,
    create_join_token,
    join_refusal,
)
from federation.service.leases import DEFAULT_MISSED_INTERVALS
from federation.service.metrics import FederationMetrics
from federation.service.publisher import SnapshotPublisher
from federation.service.status import federation_status
from federation.store import (
    ClusterRecord,
    EncodedJsonObject,
    JsonDocument,
    Store,
    TokenError,
)
from federation.trust import (
    BundleError,
    BundleUpdateError,
    SpiffeIdError,
    TrustBundle,
    TrustDomain,
    parse_bundle,
)
from federation.trust.signed_bundle import accept_bundle_update


@dataclass(frozen=True)
class ServiceSettings:
    """Knobs of the API (see ``FederationConfig`` for the file form)."""

    federation_url: str
    ca_fingerprint: str
    audience: str = "isthmus-federation"
    report_interval_s: float = 1.0
    missed_intervals: int = DEFAULT_MISSED_INTERVALS
    max_token_ttl_s: int = 300
    long_poll_s: float = 30.0
    replica_urls: tuple[str, ...] = ()


class FederationService:
    """The API's behaviour over a :class:`~federation.store.Store` (borrowed, not closed)."""

    def __init__(
        self,
        store: Store,
        publisher: SnapshotPublisher,
        settings: ServiceSettings,
        *,
        clock: Callable[[], float],
        metrics: FederationMetrics,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        #: foreign trust domains (SPIRE bundle endpoints), served but never relayed to gateways
        self.foreign: ForeignBundles | None = None

    async def create_join_token(self, cluster: str, ttl_s: float = DEFAULT_TOKEN_TTL_S) -> str:
        """Store a single-use token for ``cluster`` and return its text (print it once)."""
        token, record = create_join_token(
            federation_url=self.settings.federation_url,
            ca_sha256=self.settings.ca_fingerprint,
            cluster=cluster,
            now=self.clock(),
            ttl_s=ttl_s,
        )
        await self.store.create_join_token(
            record.token_id, record.cluster, record.digest, record.expires_at
        )
        return token.encode()

    @staticmethod
    def _parse_join_bundle(request: JoinRequest) -> TrustBundle:
        """Shape checks only (no store read): a typo here never burns the token."""
        try:
            td = TrustDomain.parse(request.trust_domain)
        except SpiffeIdError as err:
            raise InvalidInputError(f"trust_domain: {err}", reason="invalid-trust-domain") from err
        try:
            bundle = parse_bundle(td, request.trust_bundle)
        except BundleError as err:
            raise InvalidInputError(f"trust_bundle: {err}", reason="invalid-bundle") from err
        if not bundle.jwt_authorities:
            raise InvalidInputError(
                "trust_bundle: holds no jwt-svid key; the gateway authenticates to the "
                "federation with JWT-SVIDs signed by one",
                reason="invalid-bundle",
            )
        return bundle

    async def _check_bundle_conflicts(self, bundle: TrustBundle, cluster: str) -> None:
        """Checks against what is registered: run only for an authentic, unused token, so an
        unknown token cannot probe which trust domains exist."""
        td = bundle.trust_domain
        if self.foreign is not None and td.name in self.foreign.sources:
            raise ConflictError(
                f"trust_domain: {td.name} is configured as a foreign trust domain "
                "(foreign_trust_domains in federation.yaml); join under another trust domain",
                reason="trust-domain-foreign",
            )
        owner = await self.store.cluster_of_trust_domain(td.name)  # one row, not N
        if owner is not None and owner != cluster:
            raise ConflictError(
                f"trust_domain: {td.name} already belongs to cluster {owner!r}; "
                "every cluster has its own trust domain",
                reason="trust-domain-taken",
            )
        current = await self.store.get_bundle(td.name)
        # Gateways accept a change to a known trust domain's bundle only as a signed update; an
        # unsigned replacement relayed here would make every peer NACK every snapshot.
        if current is not None and parse_bundle(td, current.bundle) != bundle:
            raise ConflictError(
                f"trust_bundle: {td.name} is already registered with a different bundle "
                f"(sequence {current.sequence}); change it with a signed update "
                f"(PUT /v1/bundles/{td.name}) signed by a key of the registered bundle, or, if "
                "that key is lost, join under a new trust domain",
                reason="bundle-differs",
            )

    async def join(self, request: JoinRequest) -> JoinResponse:
        """Register a cluster. Raises ``JoinTokenError`` (403), ``InvalidInputError`` (422) or
        ``ConflictError`` (409); nothing is stored unless everything checks out.

        Order: request shape (pure, 422, the token stays usable), then the token, checked
        without using it (403), then conflicts with registered trust domains (409, the token
        stays usable), then the token is consumed atomically by the store (403 if a concurrent
        join used it first). The conflict checks read the registry, so they run only after the
        token proved authentic: an unknown, reused, expired or tampered token always gets the
        token's refusal and learns nothing about which trust domains exist."""
        token = JoinToken.decode(request.token)
        bundle = self._parse_join_bundle(request)
        now = self.clock()
        await self._token_checked(token, self.store.check_join_token, now)
        try:
            await self._check_bundle_conflicts(bundle, token.cluster)
        except ConflictError as err:
            raise ConflictError(
                f"{err}; join token {token.token_id} was not used: join again with it after "
                "fixing this",
                reason=err.reason,
            ) from err
        await self._token_checked(token, self.store.consume_join_token, now)
        await self._register(token.cluster, request, bundle, now)
        bundles = {b.trust_domain: b.bundle for b in await self.store.list_bundles()}
        return JoinResponse(
            cluster=token.cluster,
            trust_domain=bundle.trust_domain.name,
            audience=self.settings.audience,
            max_token_ttl_s=self.settings.max_token_ttl_s,
            report_interval_s=self.settings.report_interval_s,
            bundles=bundles,
            federation_urls=self.settings.replica_urls,
        )

    async def _token_checked(
        self, token: JoinToken, verdict: Callable[[str, str, float], Awaitable[str]], now: float
    ) -> None:
        """Run the store's ``check_join_token`` or ``consume_join_token``; a refusal becomes
        the join's 403 (counted by reason)."""
        try:
            await verdict(token.token_id, token.digest(), now)
        except TokenError as err:
            self.metrics.reject(f"join-{STORE_REASONS.get(err.reason, err.reason)}")
            raise join_refusal(token, STORE_REASONS.get(err.reason, err.reason)) from err

    async def _register(
        self, cluster: str, request: JoinRequest, bundle: TrustBundle, now: float
    ) -> None:
        record = ClusterRecord(
            name=cluster,
            trust_domain=bundle.trust_domain.name,
            locality=request.locality,
            gateway_addresses=request.gateway_addresses,
            capacity=request.capacity,
            cost_per_unit=request.cost.per_unit_hour,
            cost_labels=request.cost.labels,
            labels=request.labels,
            registered_at=now,
        )
        await self.store.upsert_cluster(record)
        if await self.store.get_bundle(record.trust_domain) is None:
            await self.store.put_bundle(
                record.trust_domain, bundle.sequence, bundle.to_json(), None, now
            )
        await self.store.append_event(
            "cluster-joined", cluster, {"trust_domain": record.trust_domain}, now
        )
        self.publisher.mark_dirty()

    async def _require_cluster(self, cluster: str) -> ClusterRecord:
        record = await self.store.get_cluster(cluster)
        if record is None:
            raise NotFoundError(
                f"cluster {cluster!r} has not joined this federation", reason="unknown-cluster"
            )
        return record

    def report_arrived(self, cluster: str, at: float) -> None:
        """A validated report of ``cluster`` (authenticated, joined) arrived at ``at`` and will
        be passed to :meth:`record_report`: its lease counts as renewed from ``at`` even while
        the store is busy (see :meth:`SnapshotPublisher.note_arrival`)."""
        self.publisher.note_arrival(cluster, at)

    async def record_report(
        self, cluster: str, report: HealthReport, raw: str, *, received_at: float | None = None
    ) -> None:
        """Store the cluster's latest report (renewing its lease) and let the publisher decide
        whether snapshots change. ``cluster`` must be an authenticated, joined cluster.

        Contract for every caller (the HTTP route, a long-lived stream handler): ``raw`` is the
        JSON text ``report`` was parsed from (stored verbatim). Returns once the report is
        durable in the store (on PostgreSQL: visible to every replica, so any leader sees the
        lease). Call it concurrently, one task per report: reports arriving while one commits
        are committed together (group commit, no added delay), so 1,000 gateways cost a few
        transactions per tick. Raises ``StoreError`` if its batch failed (nothing renewed).
        Cancelling it may still store the report. ``received_at``: when the report arrived,
        if it waited before this call (default: now); the lease is renewed as of then."""
        now = self.clock() if received_at is None else received_at
        await self.record_reports([(cluster, report, raw, now)])

    async def record_reports(self, reports: Sequence[tuple[str, HealthReport, str, float]]) -> None:
        """:meth:`record_report` of many ``(cluster, report, raw, received_at)`` at once, in
        ONE batch of the store's group commit (one caller, one wait)."""
        for cluster, _, _, at in reports:  # the lease counts from arrival, stored or not
            self.publisher.note_arrival(cluster, at)
        # ``raw`` parsed as a HealthReport, so it is a JSON object: the store need not re-parse.
        await self.store.record_reports(
            [(c, EncodedJsonObject(raw), at) for c, _, raw, at in reports]
        )
        for cluster, report, raw, at in reports:
            self.publisher.note_report(cluster, at, report, raw)

    async def record_ack(self, cluster: str, ack: Ack) -> None:
        """Record an ACK or NACK of a version this cluster was actually served (else
        ``ConflictError``, 409; an unknown cluster ``NotFoundError``). Same contract as
        :meth:`record_report`: durable on return, concurrent calls group-committed, a NACK
        also appends a ``snapshot-nacked`` timeline event."""
        if self.publisher.current(cluster) is None:  # served implies joined: no read then
            await self._require_cluster(cluster)
        refusal = self.ack_refusal(cluster, ack)
        if refusal is not None:
            raise refusal
        await self.record_acks([(cluster, ack)])

    async def record_acks(self, acks: Sequence[tuple[str, Ack]]) -> None:
        """Record ``(cluster, ACK/NACK)`` pairs already checked with :meth:`ack_refusal`, in
        order, in ONE batch of the store's group commit; durable on return. The NACKs' timeline
        events follow in one more write (its failure raises although the answers are stored)."""
        now = self.clock()
        await self.store.record_acks([(c, a.version, a.ok, a.error or None, now) for c, a in acks])
        for cluster, ack in acks:
            self.metrics.answered(cluster, ack.version, now)
        events: list[tuple[str, str, JsonDocument, float]] = [
            ("snapshot-nacked", cluster, {"version": ack.version, "error": ack.error}, now)
            for cluster, ack in acks
            if not ack.ok
        ]
        if events:
            await self.store.append_events(events)

    def ack_refusal(self, cluster: str, ack: Ack) -> ConflictError | None:
        """Why ``ack`` cannot be recorded (a version never served to ``cluster``), or ``None``."""
        served = self.publisher.current(cluster)
        if served is not None and ack.version <= served.version:
            return None
        return ConflictError(
            f"version: {ack.version} was never served to cluster {cluster!r} "
            f"(latest is {served.version if served else 'none'})",
            reason="unknown-version",
        )

    async def update_bundle(
        self, caller: str, trust_domain: str, request: BundleUpdateRequest
    ) -> None:
        """Accept a signed update of the caller's own trust domain: signed by a key of the
        currently stored bundle, strictly higher sequence. Gateways re-check all of it."""
        record = await self._require_cluster(caller)
        if record.trust_domain != trust_domain:
            raise PermissionDeniedError(
                f"cluster {caller!r} may publish bundles of its own trust domain "
                f"{record.trust_domain} only, not {trust_domain}",
                reason="not-your-trust-domain",
            )
        current = await self.store.get_bundle(trust_domain)
        if current is None:
            raise NotFoundError(f"no bundle for {trust_domain}; join first", reason="no-bundle")
        try:
            accepted = parse_bundle(TrustDomain.parse(trust_domain), current.bundle)
            new = accept_bundle_update(accepted, request.signed_update)
        except BundleUpdateError as err:
            status = 409 if err.reason == "stale-sequence" else 422
            raise ServiceError(f"signed_update: {err}", reason=err.reason, status=status) from err
        now = self.clock()
        await self.store.put_bundle(
            trust_domain, new.sequence, new.to_json(), request.signed_update, now
        )
        await self.store.append_event(
            "bundle-updated", trust_domain, {"sequence": new.sequence}, now
        )
        self.publisher.mark_dirty()

    async def bundle_json(self, trust_domain: str) -> str:
        record = await self.store.get_bundle(trust_domain)
        if record is None and self.foreign is not None and trust_domain in self.foreign.sources:
            return self.foreign.bundle_json(trust_domain)
        if record is None:
            raise NotFoundError(
                f"no bundle for trust domain {trust_domain!r}", reason="unknown-trust-domain"
            )
        return record.bundle

    async def timeline(self, after_id: int, limit: int) -> Timeline:
        """Timeline events with ``id > after_id``, oldest first, at most ``limit`` (1..1000)."""
        records = await self.store.list_events(after_id, max(1, min(limit, 1000)))
        return Timeline(
            events=tuple(
                TimelineEvent(
                    id=r.id, kind=r.kind, subject=r.subject, detail=json.loads(r.detail), at=r.at
                )
                for r in records
            )
        )

    async def status(self) -> FederationStatus:
        """Every cluster with its lease, bundle and snapshot state (for ``isthmus status``)."""
        return await federation_status(
            self.store,
            self.publisher.current,
            now=self.clock(),
            interval_s=self.settings.report_interval_s,
            missed_intervals=self.settings.missed_intervals,
        )
