"""JSON-ready views of a plan (``isthmus plan --output json`` and, later, the federation API).

The shape: ``placements`` ``{service: {cluster: replicas}}``, ``traffic``
``{service: {source_cluster: [{"weights": {cluster: int}, "load": int}, ...]}}``,
``explanations`` ``{service: {cluster: {...}}}`` and ``unschedulable``
``{service: {constraint, missing, desired, message}}``. Every mapping is sorted by key, so equal
plans serialise to equal text.
"""

from __future__ import annotations

from collections.abc import Iterable

from federation.placement.result import PlacementPlan


def traffic_json(
    plan: PlacementPlan, service: str, sources: Iterable[str] | None = None
) -> dict[str, object]:
    """``{source_cluster: [level, ...]}`` for one service."""
    return {
        source: [level.to_json() for level in levels]
        for source, levels in plan.traffic_table(service, sources).items()
    }


def explanations_json(plan: PlacementPlan, service: str) -> dict[str, object]:
    """``{cluster: explanation}`` for one service."""
    return {name: item.to_json() for name, item in plan.explain(service).items()}


def unschedulable_json(plan: PlacementPlan) -> dict[str, object]:
    """``{service: {constraint, missing, desired, message}}`` for services short of replicas."""
    return {
        name: {
            "constraint": item.constraint,
            "missing": item.missing,
            "desired": item.desired,
            "message": item.message,
        }
        for name, item in sorted(plan.unschedulable.items())
    }


def plan_to_json(
    plan: PlacementPlan,
    services: Iterable[str] | None = None,
    sources: Iterable[str] | None = None,
    *,
    explanations: bool = True,
) -> dict[str, object]:
    """The whole plan (or the given services / source clusters) as plain JSON data.

    ``explanations=False`` leaves the ``explanations`` key out (it is ``O(clusters)`` per
    service).
    """
    names = plan.services if services is None else tuple(sorted(services))
    source_list = None if sources is None else tuple(sources)
    data: dict[str, object] = {
        "now": plan.now,
        "placements": {name: plan.placement(name) for name in names},
        "traffic": {name: traffic_json(plan, name, source_list) for name in names},
        "unschedulable": {
            key: value for key, value in unschedulable_json(plan).items() if key in names
        },
    }
    if explanations:
        data["explanations"] = {name: explanations_json(plan, name) for name in names}
    return data


def placement_diff(
    before: PlacementPlan, after: PlacementPlan
) -> dict[str, dict[str, dict[str, int]]]:
    """``{service: {cluster: {"before": n, "after": m}}}`` for every replica count that moved."""
    diff: dict[str, dict[str, dict[str, int]]] = {}
    for name in sorted(set(before.services) | set(after.services)):
        old = before.placement(name) if name in before.inputs.services else {}
        new = after.placement(name) if name in after.inputs.services else {}
        moved = {
            cluster: {"before": old.get(cluster, 0), "after": new.get(cluster, 0)}
            for cluster in sorted(set(old) | set(new))
            if old.get(cluster, 0) != new.get(cluster, 0)
        }
        if moved:
            diff[name] = moved
    return diff
