"""Properties of the engine over random scenarios (hypothesis, modest example counts)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation.model.placement import HealthState, Scenario
from federation.placement import ChangeSet, PlacementPlan, plan, plan_to_json, replan
from tests.unit.placement.builders import used_units

# PLACEMENT_EXAMPLES=500 for a deeper local run; the default keeps the file under a few seconds
SETTINGS = settings(
    max_examples=int(os.environ.get("PLACEMENT_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
LOCALITIES = [
    ("aws", "us-east-1", "a"),
    ("aws", "us-east-1", "b"),
    ("aws", "eu-west-1", "a"),
    ("gcp", "europe-west1", "b"),
    ("gcp", "us-east4", "a"),
    ("azure", "westeurope", ""),
]


@st.composite
def clusters(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 7))
    result = []
    for i in range(count):
        cloud, region, zone = draw(st.sampled_from(LOCALITIES))
        health = draw(st.sampled_from(["healthy", "healthy", "healthy", "degraded", "unreachable"]))
        result.append(
            {
                "name": f"c{i}",
                "cloud": cloud,
                "region": region,
                "zone": zone,
                "capacity": draw(st.integers(0, 16)),
                "load": draw(st.integers(0, 6)),
                "cost_per_unit_hour": draw(st.sampled_from([0.01, 0.03, 0.05])),
                "labels": {"tier": draw(st.sampled_from(["gold", "std"]))},
                "health": health,
                "draining": draw(st.booleans()) and draw(st.booleans()),
                "recovered_at": draw(st.sampled_from([None, None, 900.0, 980.0])),
            }
        )
    return result


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    cluster_docs = draw(clusters())
    names = [c["name"] for c in cluster_docs]
    services = []
    for j in range(draw(st.integers(1, 5))):
        doc: dict[str, Any] = {
            "name": f"s{j}.ns",
            "replicas": draw(st.integers(0, 4)),
            "units_per_replica": draw(st.sampled_from([1, 2, 3])),
            "failover": {
                "failback_after": draw(st.sampled_from([0, 60, 300])),
                "min_healthy_percent": draw(st.sampled_from([50, 71.42857142857143, 100])),
            },
        }
        if draw(st.booleans()):
            doc["spread"] = {
                "over": draw(st.sampled_from(["zone", "region", "cloud"])),
                "max_skew": draw(st.integers(1, 2)),
                "min_domains": draw(st.integers(1, max(1, min(2, doc["replicas"])))),
            }
        if draw(st.integers(0, 3)) == 0:
            doc["cluster_selector"] = {"tier": "gold"}
        if draw(st.integers(0, 3)) == 0:
            doc["allowed_regions"] = ["europe-west1", "westeurope", "eu-west-1"]
        if draw(st.integers(0, 4)) == 0:
            doc["denied_clouds"] = ["aws"]
        if j and draw(st.integers(0, 3)) == 0:
            doc["anti_affinity"] = [f"s{j - 1}.ns"]
        if draw(st.integers(0, 4)) == 0:
            doc["failover"]["mode"] = "explicit"
            doc["failover"]["order"] = draw(st.permutations(names))[:2]
        services.append(doc)
    demand = {
        s["name"]: {n: draw(st.integers(0, 200)) for n in draw(st.sets(st.sampled_from(names)))}
        for s in services
    }
    current = {
        s["name"]: {n: draw(st.integers(1, 2)) for n in draw(st.sets(st.sampled_from(names)))}
        for s in services
    }
    return Scenario.model_validate(
        {
            "now": 1000.0,
            "clusters": cluster_docs,
            "services": services,
            "demand": demand,
            "current": current,
        }
    )


def check_hard_constraints(result: PlacementPlan, scenario: Scenario) -> None:
    specs = {c.name: c for c in scenario.clusters}
    policies = {s.name: s for s in scenario.services}
    units = {s.name: s.units_per_replica for s in scenario.services}
    placements = result.placements
    for name, used in used_units(placements, units).items():
        assert used + specs[name].load <= specs[name].capacity + 1e-9, name
    for svc_name, per_cluster in placements.items():
        policy = policies[svc_name]
        total = sum(per_cluster.values())
        missing = result.unschedulable[svc_name].missing if svc_name in result.unschedulable else 0
        assert total + missing == policy.desired_replicas(
            sum(scenario.demand.get(svc_name, {}).values())
        )
        for cluster_name, replicas in per_cluster.items():
            spec = specs[cluster_name]
            assert replicas > 0
            assert spec.health is not HealthState.UNREACHABLE and not spec.draining
            if spec.health is HealthState.DEGRADED:
                assert replicas <= scenario.current.get(svc_name, {}).get(cluster_name, 0)
            assert all(spec.labels.get(k) == v for k, v in policy.cluster_selector.items())
            assert not policy.allowed_regions or spec.region in policy.allowed_regions
            assert spec.cloud not in policy.denied_clouds
            for other in policy.anti_affinity:
                assert cluster_name not in placements[other]
        if policy.spread and per_cluster:
            key = policy.spread.over
            counts: dict[str, int] = {}
            for cluster_name, replicas in per_cluster.items():
                domain = getattr(specs[cluster_name], key) + "/" + specs[cluster_name].region
                counts[domain if key != "cloud" else specs[cluster_name].cloud] = (
                    counts.get(domain if key != "cloud" else specs[cluster_name].cloud, 0)
                    + replicas
                )
            assert len(counts) >= policy.spread.min_domains
            assert max(counts.values()) - min(counts.values()) <= policy.spread.max_skew


def check_accounting(result: PlacementPlan, scenario: Scenario) -> None:
    """The engine's running capacity ledger equals what its placements add up to."""
    units = {s.name: s.units_per_replica for s in scenario.services}
    expected = used_units(result.placements, units)
    for name, used in result.used_units().items():
        assert used == pytest.approx(expected.get(name, 0.0), abs=1e-9), name


def check_traffic(result: PlacementPlan, scenario: Scenario) -> None:
    specs = {c.name: c for c in scenario.clusters}
    for svc_name in result.services:
        placed = result.placement(svc_name)
        routable = [
            c for c in placed if specs[c].health_fraction > 0 and specs[c].recovered_at is None
        ]
        for source in result.clusters:
            levels = result.traffic(svc_name, source)
            assert bool(levels) == bool(placed)
            if routable:
                assert levels, f"{source} has no route to {svc_name}"
            if levels:
                assert sum(level.load for level in levels) == 100
            for level in levels:
                assert sum(level.weights.values()) == 100
                assert all(isinstance(w, int) and w > 0 for w in level.weights.values())
                assert set(level.weights) <= set(placed)


@SETTINGS
@given(scenarios())
def test_hard_constraints_hold_and_traffic_is_well_formed(scenario: Scenario) -> None:
    result = plan(scenario)
    check_hard_constraints(result, scenario)
    check_traffic(result, scenario)
    check_accounting(result, scenario)
    for svc_name in result.services:
        why = result.explain(svc_name)
        assert set(why) == set(result.clusters)
        assert {c for c, e in why.items() if e.chosen} == set(result.placement(svc_name))


@SETTINGS
@given(scenarios())
def test_same_input_gives_identical_output(scenario: Scenario) -> None:
    assert plan_to_json(plan(scenario)) == plan_to_json(plan(scenario))


@SETTINGS
@given(scenarios(), st.data())
def test_small_perturbation_only_moves_affected_services(
    scenario: Scenario, data: st.DataObject
) -> None:
    before = plan(scenario)
    target = data.draw(st.sampled_from(before.clusters))
    spec = before.cluster(target)
    if data.draw(st.booleans()):
        delta = data.draw(st.sampled_from([-1.0, 1.0]))
        changed = spec.model_copy(update={"load": max(0.0, spec.load + delta)})
    else:
        health = data.draw(st.sampled_from(list(HealthState)))
        changed = spec.model_copy(update={"health": health, "healthy_percent": None})
    after = replan(before, ChangeSet(clusters=(changed,)))
    new_scenario = scenario.model_copy(
        update={"clusters": tuple(changed if c.name == target else c for c in scenario.clusters)}
    )
    check_hard_constraints(after, new_scenario.model_copy(update={"current": before.placements}))
    check_traffic(after, new_scenario)
    check_accounting(after, new_scenario)
    related = {s.name for s in scenario.services if s.anti_affinity} | {
        t for s in scenario.services for t in s.anti_affinity
    }
    for svc_name in before.services:
        if target in before.placement(svc_name) or svc_name in before.unschedulable:
            continue
        if svc_name in related:
            continue
        assert after.placement(svc_name) == before.placement(svc_name), svc_name


@SETTINGS
@given(scenarios())
def test_replanning_from_its_own_placement_keeps_every_replica(scenario: Scenario) -> None:
    """Current replicas are reserved until their service's turn, so a re-plan never places
    fewer replicas than the plan it starts from (it may still move one for a better score)."""
    first = plan(scenario)
    again = plan(scenario.model_copy(update={"current": first.placements}))
    for name in first.services:
        assert sum(again.placement(name).values()) >= sum(first.placement(name).values()), name


@SETTINGS
@given(scenarios(), st.sampled_from([950.0, 1000.0, 1100.0, 1300.0, 2000.0]))
def test_failback_window_is_honoured(scenario: Scenario, now: float) -> None:
    result = plan(scenario, now=now)
    specs = {c.name: c for c in scenario.clusters}
    policies = {s.name: s for s in scenario.services}
    for svc_name in result.services:
        window = policies[svc_name].failover.failback_after
        placed = result.placement(svc_name)
        waiting = {
            c
            for c in placed
            if specs[c].recovered_at is not None and now < specs[c].recovered_at + window
        }
        live = {c for c in placed if c not in waiting and specs[c].health_fraction > 0}
        for source in result.clusters:
            for level in result.traffic(svc_name, source):
                if live:  # not in panic: nothing goes to a cluster still in its window
                    assert not set(level.weights) & waiting


@SETTINGS
@given(scenarios(), st.data())
def test_changing_or_removing_a_service_keeps_every_invariant(
    scenario: Scenario, data: st.DataObject
) -> None:
    before = plan(scenario)
    policy = data.draw(st.sampled_from(scenario.services))
    others = [s for s in scenario.services if s.name != policy.name]
    if data.draw(st.booleans()) and not any(policy.name in s.anti_affinity for s in others):
        after = replan(before, ChangeSet(removed_services=(policy.name,)))
        remaining = scenario.model_copy(
            update={
                "services": tuple(others),
                "demand": {k: v for k, v in scenario.demand.items() if k != policy.name},
                "current": {k: v for k, v in before.placements.items() if k != policy.name},
            }
        )
    else:
        resized = policy.model_copy(
            update={
                "replicas": data.draw(
                    st.integers(policy.spread.min_domains if policy.spread else 0, 4)
                ),
                "units_per_replica": float(data.draw(st.integers(1, 3))),
            }
        )
        after = replan(before, ChangeSet(services=(resized,)))
        remaining = scenario.model_copy(
            update={
                "services": tuple(
                    resized if s.name == policy.name else s for s in scenario.services
                ),
                "current": before.placements,
            }
        )
    check_hard_constraints(after, remaining)
    check_accounting(after, remaining)
    check_traffic(after, remaining)


def test_a_replan_keeps_a_replica_an_anti_affine_neighbour_could_have_displaced() -> None:
    """Found by the property above: s1 (anti s0) may move for a better score; it must not move
    next to s2's reserved replica (s2 anti s1), which would leave s2 nowhere to go."""
    gold = {"cloud": "aws", "region": "us-east-1", "zone": "a", "labels": {"tier": "gold"}}
    scenario = Scenario.model_validate(
        {
            "now": 1000.0,
            "stickiness": 0.05,
            "clusters": [
                {"name": "c0", "capacity": 4, "cost_per_unit_hour": 0.03, **gold},
                {"name": "c1", "capacity": 0, "cost_per_unit_hour": 0.01, **gold},
                {"name": "c2", "capacity": 0, "cost_per_unit_hour": 0.01, **gold},
                {"name": "c3", "capacity": 3, "cost_per_unit_hour": 0.03, **gold},
            ],
            "services": [
                {"name": "s0.ns", "replicas": 1, "cluster_selector": {"tier": "gold"}},
                {
                    "name": "s1.ns",
                    "replicas": 1,
                    "cluster_selector": {"tier": "gold"},
                    "anti_affinity": ["s0.ns"],
                },
                {
                    "name": "s2.ns",
                    "replicas": 1,
                    "units_per_replica": 3,
                    "cluster_selector": {"tier": "gold"},
                    "anti_affinity": ["s1.ns"],
                },
            ],
        }
    )
    first = plan(scenario)
    again = plan(scenario.model_copy(update={"current": first.placements}))
    for name in first.services:
        assert sum(again.placement(name).values()) == sum(first.placement(name).values()), name
