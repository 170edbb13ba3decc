"""Incremental re-planning: only affected services move; results stay consistent."""

from __future__ import annotations

import pytest

from federation.model.placement import HealthState, LatencyDefaults, NetworkSpec, ServicePolicy
from federation.placement import (
    ChangeSet,
    ScenarioError,
    changes_since,
    plan,
    plan_to_json,
    replan,
    replan_to,
)
from tests.unit.placement.builders import cluster, scenario, service


def _fleet() -> tuple[list, list]:
    clusters = [
        cluster(f"c-{i}", ["aws", "gcp"][i % 2], f"r{i % 3}", f"z{i}", capacity=20)
        for i in range(6)
    ]
    services = [service(f"s{j}.ns", replicas=2, spread={"over": "zone"}) for j in range(12)]
    return clusters, services


def test_a_cluster_going_down_replans_only_the_services_on_it() -> None:
    clusters, services = _fleet()
    before = plan(scenario(clusters, services))
    victim = "c-2"
    hosted = {s for s in before.services if victim in before.placement(s)}
    assert hosted and len(hosted) < len(before.services)
    down = before.cluster(victim).model_copy(update={"health": HealthState.UNREACHABLE})
    after = replan(before, ChangeSet(clusters=(down,)))
    for name in before.services:
        assert victim not in after.placement(name)
        assert sum(after.placement(name).values()) == 2
        if name not in hosted:
            assert after.placement(name) == before.placement(name)
    assert after.used_units()[victim] == 0
    assert after.replanned == hosted
    assert after.moved == hosted  # each had a replica on the victim
    snapshot = after.traffic_for_source("c-0")
    assert set(snapshot) == set(before.services)
    assert all(victim not in level.weights for levels in snapshot.values() for level in levels)
    # the previous plan is untouched
    assert {s for s in before.services if victim in before.placement(s)} == hosted


def test_replan_reaches_a_valid_plan_and_json_matches_a_fresh_read() -> None:
    clusters, services = _fleet()
    before = plan(scenario(clusters, services))
    added = service("new.ns", replicas=3, units_per_replica=2)
    after = replan(before, ChangeSet(services=(added,), demand={"new.ns": {"c-0": 10}}))
    assert sum(after.placement("new.ns").values()) == 3
    data = plan_to_json(after)
    assert data["placements"]["new.ns"] == after.placement("new.ns")
    removed = replan(after, ChangeSet(removed_services=("new.ns",)))
    assert "new.ns" not in removed.services
    assert removed.used_units() == pytest.approx(before.used_units())


def test_adding_a_cluster_falls_back_to_a_full_plan_keeping_placements() -> None:
    clusters, services = _fleet()
    before = plan(scenario(clusters, services))
    extra = cluster("c-9", "azure", "r9", "z9", capacity=20)
    after = replan(before, ChangeSet(clusters=(extra,)))
    assert "c-9" in after.clusters
    assert after.placements == before.placements  # hysteresis: nothing gains enough to move


def test_unknown_names_in_a_change_set_are_named() -> None:
    clusters, services = _fleet()
    before = plan(scenario(clusters, services))
    with pytest.raises(ScenarioError, match="removed_services: unknown service 'x.y'"):
        replan(before, ChangeSet(removed_services=("x.y",)))
    with pytest.raises(ScenarioError, match=r"demand\[s0.ns\]: unknown cluster 'c-99'"):
        replan(before, ChangeSet(demand={"s0.ns": {"c-99": 1.0}}))


def test_changing_replica_size_keeps_capacity_accounting_exact() -> None:
    clusters, services = _fleet()
    before = plan(scenario(clusters, services))
    bigger = service("s0.ns", replicas=2, units_per_replica=15, spread={"over": "zone"})
    after = replan(before, ChangeSet(services=(bigger,)))
    expected = {name: 0.0 for name in after.clusters}
    for name in after.services:
        size = 15.0 if name == "s0.ns" else 1.0
        for cluster_name, replicas in after.placement(name).items():
            expected[cluster_name] += replicas * size
    assert after.used_units() == pytest.approx(expected)
    assert all(used <= 20 for used in after.used_units().values())


def test_removing_a_service_others_depend_on_is_refused_with_the_dependant_named() -> None:
    clusters, _ = _fleet()
    services = [service("db.ns"), service("app.ns", affinity=("db.ns",))]
    before = plan(scenario(clusters, services))
    with pytest.raises(
        ScenarioError, match=r"'db.ns' is still named in services\[app.ns\].affinity"
    ):
        replan(before, ChangeSet(removed_services=("db.ns",)))
    loose = service("app.ns")
    after = replan(before, ChangeSet(services=(loose,), removed_services=("db.ns",)))
    assert after.services == ("app.ns",)


def test_replan_to_a_rebuilt_scenario_touches_only_what_differs() -> None:
    clusters, services = _fleet()
    first = scenario(clusters, services, demand={"s1.ns": {"c-0": 50}})
    before = plan(first)
    victim = "c-3"
    down = before.cluster(victim).model_copy(update={"health": HealthState.UNREACHABLE})
    rebuilt = first.model_copy(
        update={
            "clusters": tuple(down if c.name == victim else c for c in first.clusters),
            "demand": {"s1.ns": {"c-0": 50}},
            "now": 60.0,
        }
    )
    changes = changes_since(before, rebuilt)
    assert changes is not None
    assert [spec.name for spec in changes.clusters] == [victim]
    assert (changes.services, changes.removed_services, dict(changes.demand)) == ((), (), {})
    after = replan_to(before, rebuilt)
    assert after.now == 60.0
    assert after.replanned == {s for s in before.services if victim in before.placement(s)}
    assert all(victim not in after.placement(s) for s in after.services)
    grown = rebuilt.model_copy(
        update={
            "services": (*rebuilt.services, ServicePolicy(name="auto.ns", min=1, max=5)),
            "demand": {**rebuilt.demand, "auto.ns": {"c-0": 300}},
        }
    )
    assert sum(replan_to(after, grown).placement("auto.ns").values()) == 5  # 300 / 70 -> 5
    # a network change can only be expressed by a full plan; placements still stick
    network = NetworkSpec(latency_ms=LatencyDefaults(cross_cloud=90))
    costly = rebuilt.model_copy(update={"network": network})
    assert changes_since(after, costly) is None
    assert replan_to(after, costly).placements == after.placements
