"""Why a cluster was chosen or rejected for a service: in words, and as data.

Scores are recomputed from the plan's inputs and the free capacity each cluster had when the
service's turn came (kept by the plan), so they are exactly what the placer compared. Affinity
masks use the final placements of the related services.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from federation.model.placement import ClusterSpec, HealthState, ServicePolicy
from federation.placement.placer import Unschedulable, relation_masks
from federation.placement.scoring import (
    CompiledService,
    headroom_scores,
    static_scores,
    total_scores,
)
from federation.placement.topology import BoolArray, ClusterState, Topology


@dataclass(frozen=True)
class Explanation:
    """One cluster's verdict for one service. ``constraint`` is set when a hard constraint (or
    ``score``) decided it; ``score`` has ``cost``, ``latency``, ``headroom`` and ``total``."""

    chosen: bool
    replicas: int
    reason: str
    constraint: str | None
    score: Mapping[str, float]

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "chosen": self.chosen,
            "replicas": self.replicas,
            "reason": self.reason,
            "score": dict(self.score),
        }
        if self.constraint is not None:
            data["constraint"] = self.constraint
        return data


def _filter_reason(
    name: str, spec: ClusterSpec, policy: ServicePolicy, anti: tuple[str, ...]
) -> str:
    if name == "cluster_selector":
        wanted = ", ".join(f"{k}={v}" for k, v in sorted(policy.cluster_selector.items()))
        return f"labels do not match cluster_selector ({wanted})"
    if name == "clusters":
        return "not in the service's clusters allow-list"
    if name == "allowed_regions":
        return (
            f"region {spec.region} is not in allowed_regions "
            f"({', '.join(policy.allowed_regions)}): data residency"
        )
    if name == "denied_clouds":
        return f"cloud {spec.cloud} is in denied_clouds"
    if name == "affinity":
        return f"does not run {', '.join(policy.affinity)} (affinity)"
    return f"runs {', '.join(anti)} (anti-affinity)"


def _rejected_by_rule(
    spec: ClusterSpec,
    policy: ServicePolicy,
    anti: tuple[str, ...],
    failing: list[str],
    held: int,
) -> tuple[str, str] | None:
    """(constraint, words) for the first hard rule that excludes the cluster, else None."""
    if spec.health is HealthState.UNREACHABLE:
        return "health", "unreachable: its leases expired, so it runs no replicas"
    if spec.draining:
        return "draining", "draining: it takes no replicas and its replicas move away"
    if failing:
        return failing[0], _filter_reason(failing[0], spec, policy, anti)
    if spec.health is HealthState.DEGRADED and not held:
        percent = spec.health_fraction * 100
        return (
            "health",
            f"degraded ({percent:g}% healthy): keeps replicas it runs, takes no new ones",
        )
    return None


def explain_service(
    topo: Topology,
    state: ClusterState,
    svc: CompiledService,
    *,
    placement: Mapping[int, int],
    current: Mapping[int, int],
    free_before: npt.NDArray[np.float32],
    placements: Mapping[str, Mapping[int, int]],
    anti: tuple[str, ...],
    problem: Unschedulable | None,
) -> dict[str, Explanation]:
    """Verdict for every cluster, keyed by cluster name in name order."""
    policy, units = svc.policy, svc.policy.units_per_replica
    free = free_before.astype(np.float64)
    named_masks: list[tuple[str, BoolArray]] = list(topo.filter_masks(policy))
    named_masks += list(relation_masks(topo.size, svc, anti, placements))
    mask = state.reachable.copy()
    for _, allowed in named_masks:
        mask &= allowed
    static = static_scores(topo, state, svc, mask)
    head = headroom_scores(free, state.capacity, units)
    total = total_scores(policy, static, head)
    lowest_chosen = min((float(total[i]) for i in placement), default=None)
    result: dict[str, Explanation] = {}
    for i, spec in enumerate(topo.specs):
        score = {
            "cost": round(float(static.cost[i]), 4),
            "latency": round(float(static.latency[i]), 4),
            "headroom": round(float(head[i]), 4),
            "total": round(float(total[i]), 4),
        }
        count = placement.get(i, 0)
        if count:
            reason = (
                f"runs {count} replica(s): total score {total[i]:.3f} (cost {static.cost[i]:.2f}, "
                f"latency {static.latency[i]:.2f}, headroom {head[i]:.2f})"
            )
            if current.get(i):
                reason += "; already ran here, so it stays unless a move gains more than stickiness"
            result[spec.name] = Explanation(True, count, reason, None, score)
            continue
        failing = [name for name, allowed in named_masks if not allowed[i]]
        verdict = _rejected_by_rule(spec, policy, anti, failing, current.get(i, 0))
        if verdict is None and free[i] + 1e-9 < units:
            verdict = ("capacity", f"full: {max(free[i], 0):g} unit(s) free, {units:g} needed")
        if verdict is None:
            verdict = _score_verdict(float(total[i]), lowest_chosen, problem, svc.desired)
        result[spec.name] = Explanation(False, 0, verdict[1], verdict[0], score)
    return result


def _score_verdict(
    total: float, lowest_chosen: float | None, problem: Unschedulable | None, desired: int
) -> tuple[str, str]:
    if problem is not None and problem.constraint.startswith("spread"):
        return problem.constraint, f"not used: {problem.message}"
    if desired == 0:
        return "score", "not needed: the service wants no replicas"
    if lowest_chosen is None:
        return "score", f"not chosen: total score {total:.3f}"
    return (
        "score",
        f"not chosen: total score {total:.3f} is below the chosen clusters' "
        f"(lowest {lowest_chosen:.3f}), or the chosen ones already met spread and replicas",
    )
