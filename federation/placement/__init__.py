"""The placement engine: which clusters run each service, how its traffic is split and failed
over, and why — one pure function of the inputs (no I/O, no clock, no randomness).

Entry points: :func:`plan` (a whole :class:`~federation.model.placement.Scenario`) and
:func:`replan` (a previous plan plus a :class:`ChangeSet`, re-placing only affected services).
See ``docs/placement.md``.
"""

from federation.placement.diff import changes_since, replan_to
from federation.placement.engine import ChangeSet, plan, replan
from federation.placement.errors import PlacementError, ScenarioError
from federation.placement.explain import Explanation
from federation.placement.placer import Unschedulable
from federation.placement.result import PlacementPlan
from federation.placement.serialise import (
    explanations_json,
    placement_diff,
    plan_to_json,
    traffic_json,
    unschedulable_json,
)
from federation.placement.traffic import ServiceTraffic, TrafficLevel, largest_remainder
from federation.placement.whatif import WHAT_IF_SYNTAX, what_if_changes

__all__ = [
    "WHAT_IF_SYNTAX",
    "ChangeSet",
    "Explanation",
    "PlacementError",
    "PlacementPlan",
    "ScenarioError",
    "ServiceTraffic",
    "TrafficLevel",
    "Unschedulable",
    "changes_since",
    "explanations_json",
    "largest_remainder",
    "placement_diff",
    "plan",
    "plan_to_json",
    "replan",
    "replan_to",
    "traffic_json",
    "unschedulable_json",
    "what_if_changes",
]
