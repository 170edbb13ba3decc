"""What-if expressions: each one changes exactly what it says, or names itself as invalid."""

from __future__ import annotations

import pytest

from federation.model.placement import HealthState
from federation.placement import PlacementPlan, ScenarioError, plan, what_if_changes
from tests.unit.placement.builders import cluster, scenario, service


def _base() -> PlacementPlan:
    clusters = [
        cluster("a-1", "aws", "us-east-1", "a", health="degraded"),
        cluster("g-1", "gcp", "us-east4", "a"),
    ]
    return plan(scenario(clusters, [service("web.shop")]))


def test_each_expression_changes_one_thing() -> None:
    base = _base()
    changes = what_if_changes(base, ["down:g-1", "load:a-1=7.5"])
    specs = {spec.name: spec for spec in changes.clusters}
    assert specs["g-1"].health is HealthState.UNREACHABLE
    assert specs["a-1"].load == 7.5 and specs["a-1"].health is HealthState.DEGRADED
    up = what_if_changes(base, ["up:a-1"]).clusters
    assert [(spec.name, spec.health) for spec in up] == [("a-1", HealthState.HEALTHY)]
    drained = what_if_changes(base, ["drain:gcp"]).clusters
    assert [(spec.name, spec.draining) for spec in drained] == [("g-1", True)]
    assert what_if_changes(base, ["up:g-1"]).clusters == ()  # already healthy: no change


@pytest.mark.parametrize(
    ("expression", "needle"),
    [
        ("down:zz-9", "unknown cluster 'zz-9'"),
        ("drain:oracle", "no cluster runs in cloud 'oracle'"),
        ("load:a-1", "load needs CLUSTER=UNITS"),
        ("load:a-1=-3", "load needs CLUSTER=UNITS"),
        ("load:a-1=lots", "load needs CLUSTER=UNITS"),
        ("explode:a-1", "is not one of"),
        ("down", "is not one of"),
    ],
)
def test_invalid_expressions_name_themselves(expression: str, needle: str) -> None:
    with pytest.raises(ScenarioError) as err:
        what_if_changes(_base(), [expression])
    assert err.value.field == "--what-if"
    assert needle in str(err.value)
