"""What-if expressions (``down:CLUSTER``, ``drain:CLOUD``, ``load:CLUSTER=N``, ``up:CLUSTER``)
turned into a :class:`~federation.placement.engine.ChangeSet` against a plan.

Several expressions combine in order; each names a cluster or cloud the plan knows, or raises
:class:`ScenarioError` naming the expression.
"""

from __future__ import annotations

from collections.abc import Sequence

from federation.model.placement import ClusterSpec, HealthState
from federation.placement.engine import ChangeSet
from federation.placement.errors import ScenarioError
from federation.placement.result import PlacementPlan

WHAT_IF_SYNTAX = "down:CLUSTER | up:CLUSTER | drain:CLOUD | load:CLUSTER=UNITS"


def _cluster(specs: dict[str, ClusterSpec], name: str, expression: str) -> ClusterSpec:
    spec = specs.get(name)
    if spec is None:
        raise ScenarioError("--what-if", f"unknown cluster {name!r} in {expression!r}")
    return spec


def _apply(specs: dict[str, ClusterSpec], expression: str) -> None:
    kind, sep, arg = expression.partition(":")
    if not sep or not arg:
        raise ScenarioError("--what-if", f"{expression!r} is not one of {WHAT_IF_SYNTAX}")
    if kind == "down":
        spec = _cluster(specs, arg, expression)
        specs[arg] = spec.model_copy(
            update={"health": HealthState.UNREACHABLE, "healthy_percent": None}
        )
    elif kind == "up":
        spec = _cluster(specs, arg, expression)
        specs[arg] = spec.model_copy(
            update={"health": HealthState.HEALTHY, "healthy_percent": None, "draining": False}
        )
    elif kind == "drain":
        names = [name for name, spec in specs.items() if spec.cloud == arg]
        if not names:
            raise ScenarioError("--what-if", f"no cluster runs in cloud {arg!r} ({expression!r})")
        for name in names:
            specs[name] = specs[name].model_copy(update={"draining": True})
    elif kind == "load":
        name, eq, value = arg.partition("=")
        spec = _cluster(specs, name, expression)
        try:
            units = float(value) if eq else -1.0
        except ValueError:
            units = -1.0
        if units < 0:
            raise ScenarioError("--what-if", f"{expression!r}: load needs CLUSTER=UNITS (>= 0)")
        specs[name] = spec.model_copy(update={"load": units})
    else:
        raise ScenarioError("--what-if", f"{expression!r} is not one of {WHAT_IF_SYNTAX}")


def what_if_changes(plan: PlacementPlan, expressions: Sequence[str]) -> ChangeSet:
    """The cluster changes the expressions describe, relative to ``plan``."""
    original = {name: plan.cluster(name) for name in plan.clusters}
    specs = dict(original)
    for expression in expressions:
        _apply(specs, expression.strip())
    changed = tuple(spec for name, spec in sorted(specs.items()) if spec != original[name])
    return ChangeSet(clusters=changed)
