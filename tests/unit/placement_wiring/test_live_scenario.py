"""The federation's live view as a placement scenario, and planned levels filtered for a
snapshot (pure cores of the placement loop)."""

from __future__ import annotations

from federation.model.api import HealthReport
from federation.model.placement import HealthState, ServicePolicy
from federation.model.routing import Locality
from federation.service.placement_routes import PlannedRoute, PlannedTraffic
from federation.service.placement_scenario import (
    ReportCache,
    build_scenario,
    quantize_rate,
    unresolved_services,
)
from federation.store import ClusterRecord, ReportRecord


def record(name: str, capacity: int = 10) -> ClusterRecord:
    return ClusterRecord(
        name=name,
        trust_domain=f"{name}.test",
        locality=Locality(cloud="aws", region="eu-west-1", zone=f"{name}-z"),
        capacity=capacity,
        cost_per_unit=0.5,
        labels={"tier": "gold"},
    )


def report(rate: float, healthy: int, down: int) -> HealthReport:
    endpoints: list[dict[str, object]] = [{"address": f"10.0.0.{i}:80"} for i in range(healthy)]
    endpoints += [{"address": f"10.0.1.{i}:80", "healthy": False} for i in range(down)]
    return HealthReport.model_validate(
        {
            "sequence": 1,
            "sent_at": 0,
            "services": [{"name": "checkout.shop", "endpoints": endpoints, "request_rate": rate}],
        }
    )


POLICY = ServicePolicy(name="checkout.shop", replicas=2)


def test_registration_leases_and_reports_become_cluster_specs_and_demand() -> None:
    scenario = build_scenario(
        [record("b"), record("a", capacity=4), record("c")],
        {"a": "healthy", "b": "unreachable"},
        {"a": report(123.4, healthy=2, down=3), "b": report(50, 1, 0)},
        [POLICY],
        recovered_at={"a": 100.0},
        current={"checkout.shop": {"a": 1, "gone": 3}, "undeclared.shop": {"a": 1}},
        now=200.0,
    )
    a, b, c = scenario.clusters
    assert (a.name, a.capacity, a.cost_per_unit_hour, a.labels) == ("a", 4.0, 0.5, {"tier": "gold"})
    assert (a.zone, a.health, a.healthy_percent, a.recovered_at) == ("a-z", "healthy", 40.0, 100.0)
    assert b.health is HealthState.UNREACHABLE and b.healthy_percent is None
    assert c.health is HealthState.UNREACHABLE  # joined, never reported: pending
    assert scenario.demand == {"checkout.shop": {"a": 120.0, "b": 50.0}}
    assert scenario.current == {"checkout.shop": {"a": 1}}
    assert scenario.now == 200.0


def test_report_noise_is_not_demand() -> None:
    assert quantize_rate(1234.5) == 1200.0
    assert quantize_rate(1190.0) == 1200.0
    assert quantize_rate(0.0) == 0.0


def test_policies_naming_unknown_clusters_or_services_are_left_out_with_a_reason() -> None:
    policies = [
        ServicePolicy(name="pinned.shop", replicas=1, clusters=("nowhere",)),
        ServicePolicy(name="follower.shop", replicas=1, affinity=("pinned.shop",)),
        ServicePolicy(name="lonely.shop", replicas=1, anti_affinity=("ghost.shop",)),
        POLICY,
    ]
    assert unresolved_services(policies, {"a"}) == {
        "pinned.shop": "clusters: cluster 'nowhere' has not joined",
        "follower.shop": "affinity: service 'pinned.shop' is not declared",
        "lonely.shop": "anti_affinity: service 'ghost.shop' is not declared",
    }


def test_planned_levels_drop_unusable_clusters_and_reweight_to_100() -> None:
    traffic = PlannedTraffic(
        1,
        {"checkout.shop": {"a": PlannedRoute(({"b": 60, "c": 40}, {"d": 100}), {"b": 0.5})}},
        frozenset({"checkout.shop"}),
    )
    levels, health = traffic.levels("a", "checkout.shop", lambda c: c != "c") or ((), {})
    assert [level.weights for level in levels] == [{"b": 100}, {"d": 100}]
    assert health == {"b": 0.5}
    levels, _ = traffic.levels("a", "checkout.shop", lambda c: c == "d") or ((), {})
    assert [level.weights for level in levels] == [{"d": 100}]
    assert traffic.levels("a", "checkout.shop", lambda c: False) is None
    assert traffic.levels("z", "checkout.shop", lambda c: True) is None


def test_steady_reports_do_not_matter_to_the_plan_but_health_and_demand_do() -> None:
    def stored(seq: int, rate: float, down: int) -> ReportRecord:
        body = report(rate, healthy=3, down=down).model_copy(update={"sequence": seq})
        return ReportRecord("a", float(seq), body.model_dump_json())

    cache = ReportCache()
    assert cache.update([stored(1, 100.0, 0)]) is True
    assert cache.update([stored(2, 101.0, 0)]) is False  # a renewal, demand within rounding
    assert cache.update([stored(3, 150.0, 0)]) is True  # demand moved
    assert cache.update([stored(4, 150.0, 1)]) is True  # a backend went down
    assert cache.update([stored(5, 150.0, 0)], only={"b"}) is False  # not a pending cluster
    assert cache.reports["a"].sequence == 4
