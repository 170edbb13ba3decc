"""Keeps a gateway in step with its federation, and serving when the federation is gone.

:class:`FederationLink` keeps one full-duplex snapshot stream open (``POST
/v1/clusters/{c}/stream``: snapshots pushed down; reports, ACKs and NACKs sent up; on failure
back off exponentially with jitter from an injected ``random.Random``), or, with
``transport="rest"`` or a federation without the stream, runs a report loop (one health report
per interval) and a watch loop (long-polls). Each new snapshot is checked — it must be for
this cluster, and every bundle change must be a valid signed update (the federation cannot
forge) — then handed to ``apply``; if anything refuses it, the version is NACKed and the last
good snapshot stays active. A good snapshot is persisted atomically and ACKed; on start the link
applies the persisted one first, so a restarted gateway routes even if the federation is down.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Literal

import trio

from federation.client.api import FederationClient
from federation.client.bundles import reconcile_bundles
from federation.client.errors import (
    ClientStateError,
    FederationClientError,
    FederationRefused,
    SnapshotRejected,
)
from federation.client.state import (
    ClientStateDir,
    PersistedSnapshot,
    bundles_from_json,
    bundles_to_json,
)
from federation.client.stream import BundleState, SnapshotStream, StreamEnded
from federation.errors import FederationError
from federation.model.api import HealthReport, Snapshot
from federation.trust import BundleSet, TrustBundle

#: ``apply(snapshot, bundles)`` installs a snapshot; raise any exception to refuse it (NACK).
SnapshotApplier = Callable[[Snapshot, BundleSet], None]
#: Returns the report to send now (called once per report interval).
ReportSource = Callable[[], HealthReport]
#: How the link talks to its federation (see :meth:`FederationLink.follow`).
Transport = Literal["stream", "rest"]

_log = logging.getLogger(__name__)
#: A stream the federation ends sooner than this counts as a failure (backoff), not a renewal.
_MIN_STREAM_LIFE_S = 1.0


def backoff_delay(
    attempt: int, rng: random.Random, *, base_s: float = 0.5, cap_s: float = 30.0
) -> float:
    """Delay before retry number ``attempt`` (0-based): exponential, capped, "equal jitter"
    (half fixed, half random) so many gateways do not reconnect in lockstep."""
    ceiling = min(cap_s, base_s * float(2 ** min(attempt, 30)))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


class FederationLink:
    """One gateway's snapshot watch and health reports. Borrows ``client``; owns its tasks."""

    def __init__(
        self,
        client: FederationClient,
        state: ClientStateDir,
        *,
        own_bundle: TrustBundle,
        apply: SnapshotApplier,
        report_source: ReportSource,
        rng: random.Random,
        clock: Callable[[], float] = time.time,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        self_fetched_trust_domains: frozenset[str] = frozenset(),
        transport: Transport = "stream",
    ) -> None:
        self.client = client
        #: "stream" (one full-duplex HTTP/2 stream; REST if the federation has none) or "rest"
        self.transport: Transport = transport
        self._stream: SnapshotStream | None = None
        self._stream_bundles = BundleState()
        #: foreign trust domains this gateway fetches itself: never taken from snapshots
        self.self_fetched = self_fetched_trust_domains
        self.state = state
        self._own = own_bundle
        self._apply = apply
        self._report_source = report_source
        self._rng = rng
        self._clock = clock
        self._base_s, self._cap_s = backoff_base_s, backoff_cap_s
        self.active: Snapshot | None = None
        self.bundles = self._with_own(bundles_from_json(client.record.bundles))
        self.last_error = ""
        self.ready = trio.Event()
        self.failures = 0
        self.persist_error = ""
        self.persist_failures = 0
        self.persisted_version: int | None = None
        self._last_seen = 0

    def _with_own(self, bundles: BundleSet) -> BundleSet:
        return bundles.with_bundle(self._own)

    def restore(self) -> bool:
        """Apply the persisted snapshot, if any. Returns whether one is now active."""
        try:
            persisted = self.state.load_snapshot()
        except ClientStateError as err:
            _log.warning("ignoring the persisted snapshot: %s", err)
            return False
        if persisted is None:
            return False
        try:
            bundles = self._with_own(bundles_from_json(persisted.bundles))
            self._apply(persisted.snapshot, bundles)
        except Exception as err:
            _log.warning("persisted snapshot v%s refused: %s", persisted.snapshot.version, err)
            return False
        self.active, self.bundles = persisted.snapshot, bundles
        self._last_seen = persisted.snapshot.version
        self.ready.set()
        return True

    def describe(self) -> dict[str, object]:
        """The link's state for a gateway's admin/status page (JSON-serialisable)."""
        return {
            "federation_url": self.client.url,
            "cluster": self.client.record.cluster,
            "active_version": None if self.active is None else self.active.version,
            "last_seen_version": self._last_seen,
            "trust_domains": sorted(td.name for td in self.bundles),
            "watch_failures": self.failures,
            "last_error": self.last_error,
            "persisted_version": self.persisted_version,
            "persist_failures": self.persist_failures,
            "persist_error": self.persist_error,
            "transport": self.transport,
            "streaming": self._stream is not None,
        }

    def check(self, snapshot: Snapshot) -> BundleSet:
        """The bundles to use with ``snapshot``, or :class:`SnapshotRejected` saying why."""
        cluster = self.client.record.cluster
        if snapshot.routing.cluster != cluster:
            raise SnapshotRejected(
                f"snapshot v{snapshot.version} is for cluster {snapshot.routing.cluster!r}, "
                f"not {cluster!r}"
            )
        decision = reconcile_bundles(
            self.bundles,
            snapshot.bundles,
            snapshot.bundle_updates,
            own_trust_domain=self._own.trust_domain.name,
            self_fetched=self.self_fetched,
        )
        if not decision.ok:
            reasons = "; ".join(f"{td}: {why}" for td, why in decision.rejected)
            raise SnapshotRejected(f"snapshot v{snapshot.version} refused: {reasons}")
        return self._with_own(decision.accepted)

    async def consider(self, snapshot: Snapshot) -> bool:
        """Check, apply, persist and ACK ``snapshot``; NACK it if refused. Returns accepted."""
        try:
            bundles = self.check(snapshot)
            self._apply(snapshot, bundles)
        except Exception as err:
            self.last_error = str(err)
            _log.warning("NACK snapshot v%s: %s", snapshot.version, err)
            await self._answer(snapshot.version, ok=False, error=str(err) or type(err).__name__)
            return False
        self.active, self.bundles, self.last_error = snapshot, bundles, ""
        self._persist(snapshot, bundles)
        self.ready.set()
        await self._answer(snapshot.version, ok=True)
        return True

    def _persist(self, snapshot: Snapshot, bundles: BundleSet) -> None:
        """Save the applied snapshot for a restart while the federation is down. A failure (disk
        full, read-only state dir) never stops serving: the snapshot is valid, so it stays
        active and is ACKed; the failure is logged and shown in :meth:`describe`
        (``persist_error``, ``persist_failures``), and the next snapshot is saved afresh."""
        try:
            self.state.save_snapshot(
                PersistedSnapshot(
                    snapshot=snapshot, bundles=bundles_to_json(bundles), saved_at=self._clock()
                )
            )
        except (OSError, ClientStateError) as err:
            self.persist_failures += 1
            self.persist_error = f"could not persist snapshot v{snapshot.version}: {err}"
            _log.error("%s; still serving it, retrying with the next snapshot", self.persist_error)
            return
        self.persisted_version, self.persist_error = snapshot.version, ""

    async def _answer(self, version: int, *, ok: bool, error: str = "") -> None:
        try:
            if self._stream is not None:
                await self._stream.send_ack(version, ok, error)
            else:
                await self.client.ack(version, ok, error)
        except FederationError as err:
            _log.info("could not %s v%s: %s", "ACK" if ok else "NACK", version, err)

    async def watch(self) -> None:
        """Long-poll forever; back off with jitter while the federation is unreachable.

        ``after`` is the last version *considered* (applied or refused), so a NACKed version is
        not fetched again until the federation has a different one.
        """
        attempt = 0
        while True:
            try:
                snapshot = await self.client.watch_once(self._last_seen)
            except SnapshotRejected as err:
                if err.version is None:  # unreadable: cannot NACK a version, so back off
                    await self._back_off(attempt, err)
                    attempt += 1
                    continue
                self._last_seen, self.last_error = err.version, str(err)
                await self._answer(err.version, ok=False, error=str(err))
                continue
            except FederationClientError as err:
                await self._back_off(attempt, err)
                attempt += 1
                continue
            attempt = 0
            if snapshot is not None and snapshot.version != self._last_seen:
                self._last_seen = snapshot.version
                await self.consider(snapshot)

    async def _back_off(self, attempt: int, err: Exception) -> None:
        self.failures += 1
        self.last_error = str(err)
        delay = backoff_delay(attempt, self._rng, base_s=self._base_s, cap_s=self._cap_s)
        _log.info("federation watch failed (%s); retrying in %.2fs", err, delay)
        await trio.sleep(delay)

    async def report_forever(self, interval_s: float) -> None:
        """Send one report per ``interval_s``; failures are logged and retried next tick."""
        while True:
            try:
                await self.client.report(self._report_source())
            except FederationClientError as err:
                _log.info("health report not delivered: %s", err)
            await trio.sleep(interval_s)

    async def follow(self, report_interval_s: float) -> None:
        """Report and watch until cancelled: over the snapshot stream (:meth:`stream_forever`),
        or with REST long-polls when ``transport`` is "rest" or the federation has no stream
        endpoint (404/405). Reports go up the stream while one is open and as REST calls
        otherwise, so a stream being reopened never lets the lease lapse."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._report_loop, report_interval_s)
            if self.transport == "stream":
                await self.stream_forever()
                self.transport = "rest"
            await self.watch()

    async def _report_loop(self, interval_s: float) -> None:
        """One report per ``interval_s``: on the open stream, else by REST; failures are
        logged and retried next tick."""
        while True:
            report, stream = self._report_source(), self._stream
            try:
                if stream is not None:
                    await stream.send_report(report)
                else:
                    await self.client.report(report)
            except FederationClientError as err:
                _log.info("health report not delivered: %s", err)
            await trio.sleep(interval_s)

    async def stream_forever(self) -> None:
        """Keep one snapshot stream open: reopen at once when the federation ends it because
        the token expired, else back off with jitter. Returns only if the federation has no
        stream endpoint (the caller falls back to REST)."""
        attempt = 0
        while True:
            async with trio.open_nursery() as nursery:
                failure, progressed = await self._stream_once(nursery)
                nursery.cancel_scope.cancel()
            if isinstance(failure, FederationRefused) and failure.status in (404, 405):
                _log.warning("the federation has no snapshot stream (%s); using REST", failure)
                return
            if progressed:
                attempt = 0
            if failure is not None:
                await self._back_off(attempt, failure)
                attempt += 1

    async def _stream_once(
        self, nursery: trio.Nursery
    ) -> tuple[FederationClientError | None, bool]:
        """One stream from open to end: (the failure or ``None`` for a token expiry, whether
        anything arrived). Never raises a client error (they are returned)."""
        try:
            stream = await self.client.open_stream(
                nursery, after=self._last_seen, bundles=self._stream_bundles
            )
        except FederationClientError as err:
            return err, False
        self._stream, progressed = stream, False
        opened_at = trio.current_time()
        try:
            while True:
                await self._take_from(stream)
                progressed = True
        except StreamEnded as err:
            # A token that "expires" at once (clocks far apart) must not reopen in a tight loop.
            lived = trio.current_time() - opened_at
            if err.reason == "token-expired" and lived >= _MIN_STREAM_LIFE_S:
                return None, True
            return err, progressed
        except FederationClientError as err:
            return err, progressed
        finally:
            self._stream = None
            await stream.aclose()

    async def _take_from(self, stream: SnapshotStream) -> None:
        """Consider the next snapshot pushed; NACK one that fails validation."""
        try:
            snapshot = await stream.next_snapshot()
        except SnapshotRejected as err:
            if err.version is None:
                raise
            if not err.refetch:
                self._last_seen, self.last_error = err.version, str(err)
            await self._answer(err.version, ok=False, error=str(err))
            return
        if snapshot.version != self._last_seen:
            self._last_seen = snapshot.version
            await self.consider(snapshot)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Restore from disk, then report and watch (:meth:`follow`) until cancelled.
        ``started`` right after the restore attempt; :attr:`ready` is set once any snapshot is
        active."""
        self.restore()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.follow, self.client.record.report_interval_s)
            task_status.started()
