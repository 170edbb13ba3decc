"""The placement loop: the leader runs the engine on every relevant change and feeds snapshots.

:class:`PlacementLoop` is the trio edge around :mod:`federation.placement` (pure) and
:mod:`federation.service.placement_scenario` (pure). It runs only inside the leader's work
(:meth:`lead`, started by :class:`~federation.service.publisher.SnapshotPublisher` next to lease
expiry) and:

1. wakes on a declared-service or cluster change (store change feed, any replica), on a
   report whose endpoint health or rounded demand changed (steady renewals are filtered with
   one batched read), on a lease state change (:meth:`note_states`, from the publisher) and
   when a failback window ends; waits ``debounce_s`` so a burst of changes makes one plan;
2. rebuilds the :class:`Scenario` from the store and re-plans incrementally
   (:func:`~federation.placement.replan_to`: only services the change affects), or skips when
   the scenario equals the last one;
3. publishes a new :class:`PlannedTraffic` and asks the publisher for a rebuild, then explains,
   appends timeline events (``placement-moved``, ``failover``, ``failback``) and stores every
   service's decision (``put_decisions``).

With no declared service the loop plans nothing and snapshots keep the simple rule.
Recoveries (for ``failback_after``) are written to the store once per transition
(:meth:`~federation.store.Store.record_recovery`) and read when leadership starts, so a new
leader keeps withholding traffic from a cluster whose window its predecessor opened. A new
leader's publisher hands over the lease states before :meth:`PlacementLoop.lead` starts and
holds its first snapshot build until :meth:`PlacementLoop.wait_first_plan` (bounded).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import trio
from pydantic import ValidationError

from federation.model.api import HealthReport, LeaseState
from federation.model.placement import ServicePolicy
from federation.placement import (
    PlacementError,
    PlacementPlan,
    explanations_json,
    plan,
    replan_to,
)
from federation.service.placement_outcome import OutcomeCache
from federation.service.placement_routes import PlannedTraffic
from federation.service.placement_scenario import (
    ReportCache,
    build_scenario,
    unresolved_services,
)
from federation.store import Store, StoreError

DEFAULT_PLACEMENT_DEBOUNCE_S = 0.05
_RETRY_S = 0.5
_WAKE_TOPICS = frozenset({"service", "cluster"})
_log = logging.getLogger(__name__)


class PlacementLoop:
    """Owner of the live plan. ``request_rebuild`` is called after each new plan is stored."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float],
        request_rebuild: Callable[[], None],
        debounce_s: float = DEFAULT_PLACEMENT_DEBOUNCE_S,
    ) -> None:
        self._store = store
        self._clock = clock
        self._request_rebuild = request_rebuild
        self.debounce_s = debounce_s
        self.traffic = PlannedTraffic()
        self.plan: PlacementPlan | None = None
        #: plans computed (full or incremental) and the CPU seconds of the last one
        self.plans = 0
        self.last_cpu_s = 0.0
        self._dirty = trio.Event()
        self._states: dict[str, LeaseState] = {}
        self._recovered: dict[str, float] = {}
        #: recoveries observed but not yet written to the store
        self._unsaved: dict[str, float] = {}
        self._scenario_key: object = None
        self._failed_over: dict[str, set[str]] = {}
        self._outcome = OutcomeCache()
        #: the decisions last stored (read from the store when leadership starts)
        self._decisions: dict[str, Any] | None = None
        self._reports = ReportCache()
        self._reports_loaded = False
        self._recoveries_loaded = False
        self._pending_reports: set[str] = set()
        self._relevant = True
        #: the last read found no (valid) declared service: reports are not read meanwhile
        self._no_policies = False
        self._policies: dict[str, tuple[str, ServicePolicy | None]] = {}
        #: set once the first planning attempt of the current leadership finished
        self._first_plan = trio.Event()

    async def wait_first_plan(self, timeout_s: float) -> bool:
        """Wait until this leadership's first planning attempt finished (planned, found
        nothing to plan, or the engine refused the scenario); False after ``timeout_s`` (for
        example while the store fails). Cancellation just stops waiting."""
        with trio.move_on_after(timeout_s):
            await self._first_plan.wait()
            return True
        return False

    def mark_dirty(self) -> None:
        """Something the plan depends on changed: plan again after the debounce window."""
        self._relevant = True
        self._dirty.set()

    def note_report(self, cluster: str) -> None:
        """A new report of ``cluster`` was stored: after the debounce window, plan again if its
        endpoint health or demand changed (steady renewals cost one batched store read)."""
        self._pending_reports.add(cluster)
        self._dirty.set()

    def note_states(self, states: Mapping[str, LeaseState], now: float) -> None:
        """The publisher's latest lease verdicts; an ``unreachable -> healthy`` transition
        starts the cluster's failback window. Marks dirty when any state changed."""
        changed = False
        for cluster, state in states.items():
            before = self._states.get(cluster)
            if before != state:
                changed = True
                if before == "unreachable" and state == "healthy":
                    self._recovered[cluster] = now
                    self._unsaved[cluster] = now
        self._states = dict(states)
        if changed:
            self.mark_dirty()

    async def lead(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Plan on every change until cancelled (leader only). Store errors are logged and
        retried after a short pause; never returns. ``started`` once the change feed is
        followed and :meth:`wait_first_plan` waits for this leadership's first plan (give the
        lease states with :meth:`note_states` before starting, so the first plan sees them)."""
        self._first_plan = trio.Event()
        self._scenario_key = None
        self.plan = None
        self._decisions = None
        self._outcome = OutcomeCache()
        self._reports_loaded = False
        self._relevant = True
        self._recoveries_loaded = False
        async with self._store.changes() as feed, trio.open_nursery() as nursery:

            async def follow() -> None:
                async for change in feed:
                    if change.kind in _WAKE_TOPICS:
                        self.mark_dirty()
                    elif change.kind == "report":
                        self.note_report(change.subject)

            nursery.start_soon(follow)
            self.mark_dirty()
            task_status.started()
            while True:
                with trio.move_on_after(self._seconds_to_failback()):
                    await self._dirty.wait()
                    await trio.sleep(self.debounce_s)
                self._dirty = trio.Event()
                try:
                    await self.run_once()
                    self._first_plan.set()
                except StoreError as err:
                    _log.warning("placement failed, retrying in %.1fs: %s", _RETRY_S, err)
                    await trio.sleep(_RETRY_S)
                    self._reports_loaded = False  # re-read every report
                    self.mark_dirty()

    def _seconds_to_failback(self) -> float:
        """Until the earliest failback window of a placed service ends (inf if none)."""
        result = self.plan
        if result is None:
            return math.inf
        now = self._clock()
        deadlines = [
            at + policy.failover.failback_after
            for name, at in self._recovered.items()
            if name in result.inputs.topology.index
            for policy in (
                result.inputs.services[s].policy
                for s in result.services_on(result.inputs.topology.index[name])
            )
            if at + policy.failover.failback_after > now
        ]
        return max(0.0, min(deadlines) - now) + 0.001 if deadlines else math.inf

    async def _sync_recoveries(self) -> None:
        """Write the recoveries observed since the last call (one write per transition), and,
        first thing as leader, merge those a previous leader stored (the later time wins)."""
        for cluster, at in sorted(self._unsaved.items()):
            await self._store.record_recovery(cluster, at)
            if self._unsaved.get(cluster) == at:
                del self._unsaved[cluster]
        if not self._recoveries_loaded:
            for cluster, at in (await self._store.list_recoveries()).items():
                if at > self._recovered.get(cluster, -math.inf):
                    self._recovered[cluster] = at
                    self._relevant = True
            self._recoveries_loaded = True

    async def _reports_changed(self) -> bool:
        """Fold new reports into the cache (one store read); True if any matters to the plan.

        With no service declared, reports cannot change a plan: nothing is read (at 1,000
        gateways that was a read of every report 20 times a second), and every report is read
        afresh once a declaration appears (see :meth:`run_once`)."""
        if self._no_policies:
            self._pending_reports = set()
            self._reports_loaded = False
            return False
        if self._reports_loaded and not self._pending_reports:
            return False
        only = None if not self._reports_loaded else self._pending_reports
        self._pending_reports = set()
        changed = self._reports.update(await self._store.list_reports(), only)
        self._reports_loaded = True
        return changed

    async def _read_policies(self) -> list[ServicePolicy]:
        """Declared policies, each parsed once per stored text."""
        policies: list[ServicePolicy] = []
        seen: dict[str, tuple[str, ServicePolicy | None]] = {}
        for declared in await self._store.list_services():
            cached = self._policies.get(declared.name)
            if cached is None or cached[0] != declared.policy:
                try:
                    cached = (declared.policy, ServicePolicy.model_validate_json(declared.policy))
                except ValidationError as err:
                    _log.warning("declared service %s is invalid, ignored: %s", declared.name, err)
                    cached = (declared.policy, None)
            seen[declared.name] = cached
            if cached[1] is not None:
                policies.append(cached[1])
        self._policies = seen
        return policies

    async def _read(self) -> tuple[Any, ...]:
        clusters = await self._store.list_clusters()
        policies = await self._read_policies()
        decisions = self._decisions
        if decisions is None:  # a new leader: what the last one decided
            decisions = {
                r.service: json.loads(r.decision) for r in await self._store.list_decisions()
            }
            self._decisions = decisions
        return clusters, self._reports.reports, policies, decisions

    async def run_once(self) -> bool:
        """Read the store, plan if the scenario changed, store the outcome. True if it planned.

        Cheap when only steady reports arrived: one batched report read, no plan."""
        await self._sync_recoveries()
        relevant, self._relevant = self._relevant, False
        # No plan yet: no failback window either (``()``, as _failback_phase says); ``None``
        # here made every report re-read every cluster and service while none was declared.
        last_phase = self._scenario_key[1] if isinstance(self._scenario_key, tuple) else ()
        relevant = relevant or self._failback_phase(self._clock()) != last_phase
        if not await self._reports_changed() and not relevant:
            return False
        clusters, reports, policies, decisions = await self._read()
        self._no_policies = not policies
        if policies and not self._reports_loaded:  # the first declaration: read every report
            await self._reports_changed()
            reports = self._reports.reports
        now = self._clock()
        if not policies or not clusters:
            if self.traffic.services or decisions:
                self.traffic = PlannedTraffic(self.traffic.generation + 1)
                self.plan = None
                self._outcome = OutcomeCache()
                self._decisions = {}
                await self._store.put_decisions({}, now)
                self._request_rebuild()
            return False
        names = {c.name for c in clusters}
        invalid = unresolved_services(policies, names)
        policies = [p for p in policies if p.name not in invalid]
        current = {s: d.get("placement", {}) for s, d in decisions.items()}
        try:
            scenario = build_scenario(
                clusters,
                {c.name: self._states.get(c.name, "pending") for c in clusters},
                reports,
                policies,
                recovered_at=self._recovered,
                current=current if self.plan is None else {},
                now=now,
            )
        except ValidationError as err:  # a registration the engine cannot model: keep the last
            _log.warning("cannot build the placement scenario, keeping the last plan: %s", err)
            return False
        key = (scenario.model_copy(update={"now": 0.0}), self._failback_phase(now), invalid)
        if key == self._scenario_key and self.plan is not None:
            return False
        started = time.process_time()
        try:
            result = plan(scenario) if self.plan is None else replan_to(self.plan, scenario)
        except PlacementError as err:
            _log.warning("placement refused the live scenario: %s", err)
            return False
        self.last_cpu_s = time.process_time() - started
        self.plans += 1
        self.plan, self._scenario_key = result, key
        await self._store_outcome(result, decisions, invalid, reports, now)
        return True

    def _failback_phase(self, now: float) -> tuple[tuple[str, float], ...]:
        """``(cluster, window)`` pairs still open: a recovered cluster and each distinct
        ``failback_after`` of the services placed on it (the traffic changes when one closes,
        though the scenario does not)."""
        result = self.plan
        if result is None:
            return ()
        index = result.inputs.topology.index
        open_windows = set()
        for cluster, at in self._recovered.items():
            if cluster not in index:
                continue
            for service in result.services_on(index[cluster]):
                window = result.inputs.services[service].policy.failover.failback_after
                if now < at + window:
                    open_windows.add((cluster, window))
        return tuple(sorted(open_windows))

    async def _store_outcome(
        self,
        result: PlacementPlan,
        decisions: Mapping[str, Any],
        invalid: Mapping[str, str],
        reports: Mapping[str, HealthReport],
        now: float,
    ) -> None:
        """Publish the new routes first (snapshots follow at once), then explain, record
        events and store the decisions. Yields to other tasks while explaining."""
        outcome = self._outcome.update(result, reports, now)
        self.traffic = PlannedTraffic(
            self.traffic.generation + 1, outcome.routes, frozenset(result.services)
        )
        self._request_rebuild()
        for count, name in enumerate(outcome.explain):
            outcome.documents[name]["explanations"] = explanations_json(result, name)
            if count % 20 == 19:
                await trio.lowlevel.checkpoint()  # the publisher builds snapshots meanwhile
        for name in outcome.changed:
            await self._events(name, outcome.documents[name], decisions.get(name), now)
        documents = dict(outcome.documents)
        for name, why in sorted(invalid.items()):
            documents[name] = {
                "service": name,
                "placement": {},
                "traffic": {},
                "unschedulable": {"constraint": "reference", "message": why},
                "explanations": {},
                "decided_at": now,
            }
        await self._store.put_decisions(documents, now)
        self._decisions = documents

    async def _events(
        self, service: str, doc: Mapping[str, Any], old: Mapping[str, Any] | None, now: float
    ) -> None:
        """``placement-moved``, ``failover`` (traffic left clusters) and ``failback``."""
        before_placement = (old or {}).get("placement", {})
        if old is not None and before_placement != doc["placement"]:
            detail = {"before": before_placement, "after": doc["placement"]}
            await self._store.append_event("placement-moved", service, detail, now)
        receiving = set(doc["receiving"])
        if old is None:
            return
        lost = sorted(set(old.get("receiving", ())) - receiving)
        if lost:
            self._failed_over.setdefault(service, set()).update(lost)
            detail = {"from": lost, "to": sorted(receiving)}
            await self._store.append_event("failover", service, detail, now)
        back = sorted(self._failed_over.get(service, set()) & receiving)
        if back:
            self._failed_over[service] -= set(back)
            await self._store.append_event("failback", service, {"to": back}, now)
