"""From "here is the whole new scenario" to an incremental re-plan.

A federation that rebuilds its :class:`Scenario` from the store after a (debounced) batch of
changes calls :func:`replan_to`: it diffs the scenario against the plan's inputs and re-plans
only what changed, or plans afresh (keeping the previous placement as current) when something
global changed (network costs, stickiness).
"""

from __future__ import annotations

from federation.model.placement import Scenario
from federation.placement.engine import ChangeSet, plan, replan
from federation.placement.result import PlacementPlan


def changes_since(previous: PlacementPlan, scenario: Scenario) -> ChangeSet | None:
    """The change set turning ``previous``'s inputs into ``scenario``; ``None`` when only a full
    plan can express it (network or stickiness changed)."""
    inputs = previous.inputs
    if scenario.network != inputs.topology.network or scenario.stickiness != inputs.stickiness:
        return None
    old_clusters = {spec.name: spec for spec in inputs.topology.specs}
    new_clusters = {spec.name: spec for spec in scenario.clusters}
    old_services = {name: svc.policy for name, svc in inputs.services.items()}
    new_services = {policy.name: policy for policy in scenario.services}
    demand = {
        name: dict(rates)
        for name, rates in scenario.demand.items()
        if dict(inputs.demand.get(name, {})) != dict(rates)
    }
    demand.update(
        {name: {} for name in inputs.demand if name in new_services and name not in scenario.demand}
    )
    return ChangeSet(
        clusters=tuple(
            spec for name, spec in sorted(new_clusters.items()) if old_clusters.get(name) != spec
        ),
        removed_clusters=tuple(sorted(set(old_clusters) - set(new_clusters))),
        services=tuple(
            policy
            for name, policy in sorted(new_services.items())
            if old_services.get(name) != policy
        ),
        removed_services=tuple(sorted(set(old_services) - set(new_services))),
        demand=demand,
        now=scenario.now,
    )


def replan_to(previous: PlacementPlan, scenario: Scenario) -> PlacementPlan:
    """Re-plan towards ``scenario`` incrementally where possible.

    ``scenario.current`` is ignored: the previous plan's placement is what runs now.
    """
    changes = changes_since(previous, scenario)
    if changes is None:
        return plan(scenario.model_copy(update={"current": previous.placements}))
    return replan(previous, changes)
