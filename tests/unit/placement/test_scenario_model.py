"""Scenario validation: every invalid input names its field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from federation.model.placement import Scenario, ServicePolicy

BASE: dict[str, Any] = {
    "clusters": [{"name": "c-1", "cloud": "aws", "region": "us-east-1", "capacity": 10}],
    "services": [{"name": "web.shop", "replicas": 1}],
}


def scenario_with(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


@pytest.mark.parametrize(
    ("document", "needle"),
    [
        (scenario_with(demand={"web.shop": {"c-9": 1}}), "demand[web.shop]: unknown cluster 'c-9'"),
        (scenario_with(demand={"nope.shop": {"c-1": 1}}), "demand: unknown service 'nope.shop'"),
        (scenario_with(current={"web.shop": {"c-2": 1}}), "current[web.shop]: unknown cluster"),
        (
            scenario_with(services=[{"name": "web.shop", "replicas": 1, "clusters": ["c-7"]}]),
            "services[web.shop].clusters: unknown cluster 'c-7'",
        ),
        (
            scenario_with(services=[{"name": "web.shop", "replicas": 1, "anti_affinity": ["x.y"]}]),
            "services[web.shop].anti_affinity: unknown service 'x.y'",
        ),
        (
            scenario_with(services=[{"name": "web.shop", "replicas": 1}] * 2),
            "a service name is used twice",
        ),
        (scenario_with(clusters=[]), "clusters"),
    ],
)
def test_references_to_unknown_names_are_rejected(document: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError) as err:
        Scenario.model_validate(document)
    assert needle in str(err.value)


@pytest.mark.parametrize(
    ("policy", "needle"),
    [
        ({"replicas": 2, "min": 1}, "either replicas or min/max"),
        ({"min": 3, "max": 2}, "min (3) is greater than max (2)"),
        ({"replicas": 1, "spread": {"min_domains": 3}}, "min_domains (3) cannot be met"),
        ({"replicas": 1, "objectives": {"cost": 0, "latency": 0, "headroom": 0}}, "objectives"),
        ({"replicas": 1, "failover": {"mode": "explicit"}}, "failover.order"),
        ({"replicas": 1, "units_per_replica": 0}, "units_per_replica"),
        ({}, "replicas (or max) is required"),
    ],
)
def test_policies_that_cannot_be_met_are_rejected(policy: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError) as err:
        ServicePolicy.model_validate({"name": "web.shop", **policy})
    assert needle in str(err.value)


def test_autoscaled_replicas_follow_demand_within_bounds() -> None:
    policy = ServicePolicy(
        name="web.shop", min=2, max=5, rps_per_replica=100, target_utilisation=0.5
    )
    assert [policy.desired_replicas(rps) for rps in (0, 100, 150, 1000)] == [2, 2, 3, 5]
