"""Per-request endpoint choice: priority level, then weighted power-of-two-choices.

The hot path is O(1) after a per-route plan is built: one uniform draw picks the level, two
weighted draws pick candidates, the one with fewer in-flight requests per unit of weight wins
(ties go to the first draw, so with no load the split follows the weights exactly). Plans are
cached per service and rebuilt when the route object, the state's ``generation`` or the next
ejection expiry says they may be stale: O(endpoints) per rebuild, not per request.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

from proxy.clusters.state import UpstreamState
from proxy.loadbalancer.priority import (
    DEFAULT_OVERPROVISIONING,
    DEFAULT_PANIC_THRESHOLD,
    priority_load,
)
from proxy.routes.table import Endpoint, Route

NO_ENDPOINTS = "no_endpoints"
NO_HEALTHY_UPSTREAM = "no_healthy_upstream"
NO_UNTRIED_UPSTREAM = "no_untried_upstream"


@dataclass(frozen=True, slots=True)
class Pick:
    """The load balancer's answer. ``endpoint`` is ``None`` when nothing is routable; then
    ``reason`` is the token for ``x-isthmus-reason`` (``no_endpoints``,
    ``no_healthy_upstream``, ``no_untried_upstream``). ``level`` is the priority level chosen
    (-1 if none) and ``panic`` whether that level was routed ignoring health."""

    endpoint: Endpoint | None
    level: int = -1
    panic: bool = False
    reason: str = ""


class _Level:
    """Routable endpoints of one level with precomputed draws and answers."""

    __slots__ = ("cumulative", "endpoints", "index", "load", "panic", "picks", "total", "uniform")

    def __init__(self, index: int, endpoints: Sequence[Endpoint], load: float, panic: bool):
        self.index = index
        self.endpoints = tuple(endpoints)
        self.load = load
        self.panic = panic
        self.cumulative = list(accumulate(ep.weight for ep in endpoints))
        self.total = self.cumulative[-1] if self.cumulative else 0
        self.uniform = len({ep.weight for ep in endpoints}) <= 1
        self.picks = tuple(Pick(ep, index, panic) for ep in endpoints)


class _Plan:
    __slots__ = (
        "bounds",
        "empty",
        "generation",
        "levels",
        "route",
        "routed",
        "state",
        "valid_until",
    )

    def __init__(self, route: Route, state: UpstreamState, generation: int) -> None:
        self.route = route
        self.state = state
        self.generation = generation
        self.valid_until = float("inf")
        self.levels: list[_Level] = []  # every level with a non-empty candidate set
        self.routed: list[_Level] = []  # levels with load > 0, in order
        self.bounds: list[float] = []  # cumulative loads of ``routed``
        self.empty = Pick(None, reason=NO_ENDPOINTS)


class LoadBalancer:
    """Chooses endpoints for routes. One per :class:`UpstreamState` (it caches plans per
    service); deterministic for a given RNG seed, state and sequence of calls."""

    __slots__ = ("_plans", "overprovisioning", "panic_threshold")

    def __init__(
        self,
        overprovisioning: float = DEFAULT_OVERPROVISIONING,
        panic_threshold: float = DEFAULT_PANIC_THRESHOLD,
    ) -> None:
        self.overprovisioning = overprovisioning
        self.panic_threshold = panic_threshold
        self._plans: dict[str, _Plan] = {}

    def pick(
        self,
        route: Route,
        state: UpstreamState,
        now: float,
        rng: random.Random,
        *,
        exclude: frozenset[str] = frozenset(),
        avoid_cluster: str | None = None,
    ) -> Pick:
        """Choose the endpoint for one attempt.

        ``exclude``: endpoint keys already tried by this request (never chosen again).
        ``avoid_cluster``: for a retry after a failure that implicates a whole cluster, prefer
        endpoints of any other cluster (at any priority level) before falling back to another
        endpoint of that cluster. Never raises; a ``Pick`` without endpoint says why.
        """
        plan = self._plans.get(route.service)
        if (
            plan is None
            or plan.route is not route
            or plan.state is not state
            or plan.generation != state.generation
            or now >= plan.valid_until
        ):
            plan = self._plan(route, state, now)
        if exclude or avoid_cluster is not None:
            return _pick_retry(plan, state, rng, exclude, avoid_cluster)
        routed = plan.routed
        if not routed:
            return plan.empty
        level = routed[0]
        if len(routed) > 1:
            draw = rng.random() * 100.0
            for candidate, bound in zip(routed, plan.bounds, strict=True):
                level = candidate
                if draw < bound:
                    break
        picks = level.picks
        if len(picks) == 1:  # _p2c's answer without the call (no draw either way)
            return picks[0]
        return picks[_p2c(level, state.in_flight, rng)]

    def priority_loads(
        self, route: Route, state: UpstreamState, now: float
    ) -> tuple[list[float], list[bool]]:
        """The current per-level load percentages and panic flags of a route (for /config)."""
        levels = []
        for group in route.priorities:
            usable = [ep for ep in group.endpoints if ep.weight > 0]
            healthy = [ep for ep in usable if state.is_healthy(route.service, ep.key, now)]
            levels.append(_level_health(healthy, usable))
        return priority_load(levels, self.overprovisioning, self.panic_threshold)

    def retain(self, services: frozenset[str] | set[str]) -> None:
        """Forget cached plans of services no longer routed."""
        for name in [name for name in self._plans if name not in services]:
            del self._plans[name]

    def _plan(self, route: Route, state: UpstreamState, now: float) -> _Plan:
        plan = _Plan(route, state, state.generation)
        detector = state.outliers(route.service)
        health = state.health
        per_level: list[tuple[list[Endpoint], list[Endpoint]]] = []
        for group in route.priorities:
            usable = [ep for ep in group.endpoints if ep.weight > 0]
            healthy = []
            for ep in usable:
                if not health.is_healthy(ep.key):
                    continue
                until = detector.ejected_until(ep.key, now)
                if until is not None:
                    plan.valid_until = min(plan.valid_until, until)
                    continue
                healthy.append(ep)
            per_level.append((healthy, usable))
        loads, panic = priority_load(
            [_level_health(h, u) for h, u in per_level], self.overprovisioning, self.panic_threshold
        )
        bound = 0.0
        for index, (healthy, usable) in enumerate(per_level):
            chosen = usable if panic[index] else healthy
            if not chosen:
                continue
            level = _Level(index, chosen, loads[index], panic[index])
            plan.levels.append(level)
            if loads[index] > 0.0:
                bound += loads[index]
                plan.routed.append(level)
                plan.bounds.append(bound)
        if plan.bounds:
            plan.bounds[-1] = float("inf")  # float residue must never fall off the end
        elif any(usable for _, usable in per_level):
            plan.empty = Pick(None, reason=NO_HEALTHY_UPSTREAM)
        self._plans[route.service] = plan
        return plan


def _level_health(healthy: Sequence[Endpoint], usable: Sequence[Endpoint]) -> tuple[float, float]:
    """``(healthy, total)`` for :func:`priority_load`: endpoint counts while every endpoint is
    fully healthy (Envoy's host counts), else ``Σ weight × health`` of the live endpoints over
    ``Σ weight`` — a peer gateway whose backends are 40 % up counts as 40 % of itself."""
    if all(ep.health >= 1.0 for ep in usable):
        return float(len(healthy)), float(len(usable))
    return sum(ep.weight * ep.health for ep in healthy), float(sum(ep.weight for ep in usable))


def _p2c(level: _Level, in_flight: dict[str, int], rng: random.Random) -> int:
    """Index of the less loaded (per unit weight) of two weighted random draws."""
    endpoints = level.endpoints
    count = len(endpoints)
    if count == 1:
        return 0
    if level.uniform:
        first = int(rng.random() * count)
        second = int(rng.random() * count)
    else:
        cumulative, total = level.cumulative, level.total
        first = bisect_right(cumulative, rng.random() * total)
        second = bisect_right(cumulative, rng.random() * total)
    if first == second:
        return first
    a, b = endpoints[first], endpoints[second]
    load_a = in_flight.get(a.key, 0)
    load_b = in_flight.get(b.key, 0)
    return second if load_b * a.weight < load_a * b.weight else first


def _pick_retry(
    plan: _Plan,
    state: UpstreamState,
    rng: random.Random,
    exclude: frozenset[str],
    avoid_cluster: str | None,
) -> Pick:
    """Slow path for retries: untried endpoints, other clusters first, by level load."""
    tiers = (True, False) if avoid_cluster is not None else (False,)
    for other_cluster_only in tiers:
        options = []
        for level in plan.levels:
            eps = [
                ep
                for ep in level.endpoints
                if ep.key not in exclude
                and not (other_cluster_only and ep.locality.cluster == avoid_cluster)
            ]
            if eps:
                options.append(_Level(level.index, eps, level.load, level.panic))
        if not options:
            continue
        chosen = options[0]
        total = sum(option.load for option in options)
        if total > 0.0:
            draw = rng.random() * total
            for option in options:
                if option.load <= 0.0:
                    continue
                chosen = option
                draw -= option.load
                if draw < 0.0:
                    break
        return chosen.picks[_p2c(chosen, state.in_flight, rng)]
    return Pick(None, reason=NO_UNTRIED_UPSTREAM if plan.levels else plan.empty.reason)
