"""Place one service: greedy best-score replica by replica under every hard constraint.

Hard constraints (never violated): the cluster is reachable and not draining; a degraded cluster
keeps at most the replicas it already runs; selector, allow-list, residency, affinity and
anti-affinity masks; free capacity; topology spread (Kubernetes ``maxSkew`` / ``minDomains``
semantics). Among the clusters left, the replica goes to the highest total score plus the
``stickiness`` bonus for clusters that already run it (hysteresis), ties to the lowest name.
Replicas that cannot be placed are reported, with the first constraint that made them fail.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from federation.model.placement import SpreadPolicy
from federation.placement.scoring import CompiledService, static_scores
from federation.placement.topology import BoolArray, ClusterState, FloatArray, IntArray, Topology


@dataclass(frozen=True)
class Unschedulable:
    """Replicas of ``service`` that could not be placed, and the constraint that stopped them."""

    service: str
    constraint: str
    missing: int
    desired: int
    message: str


@dataclass(frozen=True, eq=False)
class ServiceOutcome:
    """Where one service's replicas went (cluster index -> replicas)."""

    placement: dict[int, int]
    unschedulable: Unschedulable | None
    free_before: npt.NDArray[np.float32]


def placed_mask(size: int, placement: Mapping[int, int] | None) -> BoolArray:
    """Clusters running at least one replica of a placement."""
    mask = np.zeros(size, dtype=np.bool_)
    if placement:
        mask[list(placement)] = True
    return mask


def relation_masks(
    size: int,
    svc: CompiledService,
    anti: tuple[str, ...],
    placements: Mapping[str, Mapping[int, int]],
) -> Iterator[tuple[str, BoolArray]]:
    """Affinity (must run beside) and anti-affinity (never beside) masks."""
    for target in svc.policy.affinity:
        yield "affinity", placed_mask(size, placements.get(target))
    for target in anti:
        yield "anti_affinity", ~placed_mask(size, placements.get(target))


class _SpreadTracker:
    """Replica counts per spread domain and which domains may take the next replica."""

    def __init__(self, policy: SpreadPolicy, domains: IntArray, open_slots: BoolArray) -> None:
        self.policy = policy
        self.domains = domains
        size = int(domains.max()) + 1 if domains.size else 0
        self.counts = np.zeros(size, dtype=np.int64)
        self.eligible = np.zeros(size, dtype=np.bool_)
        self.eligible[domains[open_slots]] = True
        self.n_eligible = int(self.eligible.sum())

    def allowed(self) -> tuple[BoolArray, str]:
        """Per-cluster mask of domains that may grow, and the constraint that limits them."""
        used = int((self.counts > 0).sum())
        if used < self.policy.min_domains:
            return (self.counts == 0)[self.domains], "spread.min_domains"
        if self.n_eligible < self.policy.min_domains or not self.n_eligible:
            floor = 0
        else:
            floor = int(self.counts[self.eligible].min())
        ok = self.counts + 1 - floor <= self.policy.max_skew
        return ok[self.domains], "spread.max_skew"

    def add(self, cluster: int) -> None:
        self.counts[self.domains[cluster]] += 1

    def domains_used(self) -> int:
        return int((self.counts > 0).sum())


def _slots(free: FloatArray, units: float) -> FloatArray:
    return np.maximum(np.floor(free / units + 1e-9), 0.0)


def hard_mask(
    topo: Topology,
    state: ClusterState,
    svc: CompiledService,
    placements: Mapping[str, Mapping[int, int]],
    anti: tuple[str, ...],
) -> BoolArray:
    """Clusters every hard rule but capacity and degraded-health allows."""
    mask = topo.static_mask(svc.policy) & state.reachable
    for _, allowed in relation_masks(topo.size, svc, anti, placements):
        mask &= allowed
    return mask


@dataclass(eq=False)
class _Board:
    """Mutable per-service picking state: open slots and rank per cluster."""

    slots: FloatArray
    rank: FloatArray
    base: FloatArray
    free: FloatArray
    head_weight: float
    inv_capacity: FloatArray
    units: float
    stickiness: float
    current: Mapping[int, int]

    def take(self, i: int, picked: dict[int, int]) -> None:
        """One replica on cluster ``i``: fewer slots, less headroom, stickiness used up."""
        picked[i] = picked.get(i, 0) + 1
        self.slots[i] -= 1
        self.free[i] -= self.units
        head = min(1.0, max(0.0, float(self.free[i] - self.units) * float(self.inv_capacity[i])))
        sticky = self.stickiness if picked[i] < self.current.get(i, 0) else 0.0
        self.rank[i] = float(self.base[i]) + self.head_weight * head + sticky


def _board(
    topo: Topology,
    state: ClusterState,
    svc: CompiledService,
    *,
    mask: BoolArray,
    free: FloatArray,
    current: Mapping[int, int],
    stickiness: float,
) -> _Board:
    units = svc.policy.units_per_replica
    raw = np.floor(free * (1.0 / units) + 1e-9)
    slots = np.where(mask & state.growable, raw, 0.0)
    static = static_scores(topo, state, svc, mask)
    weights = svc.policy.objectives
    wsum = weights.cost + weights.latency + weights.headroom
    base = (weights.cost * static.cost + weights.latency * static.latency) / wsum
    head_weight = weights.headroom / wsum
    head = (free - units) * state.inv_capacity  # == headroom_scores(), without its division
    np.minimum(np.maximum(head, 0.0, out=head), 1.0, out=head)
    rank = base + head_weight * head
    for i, count in current.items():
        if count > 0 and mask[i]:
            rank[i] += stickiness
            if not state.growable[i]:  # degraded: keeps what it runs, takes nothing new
                slots[i] = max(0.0, min(float(raw[i]), count))
    return _Board(
        slots, rank, base, free, head_weight, state.inv_capacity, units, stickiness, current
    )


def _pick(board: _Board, desired: int, spread: _SpreadTracker | None) -> tuple[dict[int, int], str]:
    """Greedy best-rank picks; returns the picks and the spread rule that stopped them, if any."""
    picked: dict[int, int] = {}
    for _ in range(desired):
        valid = board.slots > 0
        if spread is not None:
            allowed, limit = spread.allowed()
            if not (valid & allowed).any():
                return picked, limit if valid.any() else ""
            valid &= allowed
        elif not valid.any():
            break
        i = int(np.argmax(np.where(valid, board.rank, -np.inf)))
        board.take(i, picked)
        if spread is not None:
            spread.add(i)
    return picked, ""


def place_service(
    topo: Topology,
    state: ClusterState,
    svc: CompiledService,
    *,
    current: Mapping[int, int],
    used: FloatArray,
    placements: Mapping[str, Mapping[int, int]],
    anti: tuple[str, ...],
    stickiness: float,
) -> ServiceOutcome:
    """Place ``svc``; ``used`` (units per cluster, this service excluded) is updated in place."""
    policy, units = svc.policy, svc.policy.units_per_replica
    free = state.capacity - state.load - used
    free_before = free.astype(np.float32)
    mask = hard_mask(topo, state, svc, placements, anti)
    board = _board(topo, state, svc, mask=mask, free=free, current=current, stickiness=stickiness)
    spread = None
    if policy.spread is not None:
        domains = topo.domain_codes(policy.spread.over)
        spread = _SpreadTracker(policy.spread, domains, board.slots > 0)
    picked, blocked = _pick(board, svc.desired, spread)
    missing = svc.desired - sum(picked.values())
    if spread is not None and picked and spread.domains_used() < spread.policy.min_domains:
        picked, missing, blocked = {}, svc.desired, "spread.min_domains"
    for i, count in picked.items():
        used[i] += count * units
    problem = None
    if missing:
        problem = _diagnose(
            topo,
            state,
            svc,
            free=free_before,
            missing=missing,
            blocked=blocked,
            placements=placements,
            anti=anti,
        )
    return ServiceOutcome(dict(sorted(picked.items())), problem, free_before)


def _diagnose(
    topo: Topology,
    state: ClusterState,
    svc: CompiledService,
    *,
    free: npt.NDArray[np.float32],
    missing: int,
    blocked: str,
    placements: Mapping[str, Mapping[int, int]],
    anti: tuple[str, ...],
) -> Unschedulable:
    """Name the first constraint that leaves fewer replica slots than the service needs."""
    policy = svc.policy
    units = policy.units_per_replica
    need = svc.desired
    slots = _slots(free.astype(np.float64), units)
    if blocked:
        spread = policy.spread
        assert spread is not None
        with_room = hard_mask(topo, state, svc, placements, anti) & state.growable & (slots > 0)
        domains = len(set(topo.domain_codes(spread.over)[with_room].tolist()))
        detail = (
            f"spread over {spread.over} needs {spread.min_domains} domain(s) and "
            f"max_skew {spread.max_skew}, but only {domains} {spread.over}(s) have an allowed "
            "cluster with room"
        )
        return _problem(svc, blocked, missing, detail)
    if slots.sum() < need:
        return _problem(
            svc,
            "capacity",
            missing,
            f"all clusters together have room for "
            f"{int(slots.sum())} replica(s) of {units:g} unit(s)",
        )
    mask = state.reachable & state.growable
    steps = [("health", mask), *topo.filter_masks(policy)]
    steps += list(relation_masks(topo.size, svc, anti, placements))
    for name, allowed in steps:
        mask = mask & allowed
        room = int(slots[mask].sum())
        if room < need:
            detail = f"clusters allowed by {name} have room for {room} replica(s)"
            if name == "health":
                detail = f"healthy clusters have room for {room} replica(s)"
            return _problem(svc, name, missing, detail)
    return _problem(svc, "capacity", missing, "no allowed cluster has room left")


def _problem(svc: CompiledService, constraint: str, missing: int, detail: str) -> Unschedulable:
    units = svc.policy.units_per_replica
    message = (
        f"{missing} of {svc.desired} replica(s) ({units:g} unit(s) each) cannot be placed: {detail}"
    )
    return Unschedulable(svc.policy.name, constraint, missing, svc.desired, message)
