"""Scenario stories: what an operator sees when regions fail, clouds drain, prices differ."""

from __future__ import annotations

from federation.model.placement import HealthState, NetworkOverride, NetworkSpec
from federation.placement import ChangeSet, plan, replan, what_if_changes
from tests.unit.placement.builders import cluster, scenario, service


def _east_west() -> list:
    return [
        cluster("use1-a", "aws", "us-east-1", "us-east-1a"),
        cluster("use1-b", "aws", "us-east-1", "us-east-1b"),
        cluster("use2-a", "aws", "us-east-2", "us-east-2a"),
        cluster("gcp-use4", "gcp", "us-east4", "us-east4-a"),
    ]


def test_region_going_down_spills_traffic_gradually_then_moves_replicas() -> None:
    web = service("web.shop", replicas=4, spread={"over": "zone", "max_skew": 1})
    base = plan(scenario(_east_west(), [web], demand={"web.shop": {"use1-a": 100}}))
    assert base.placement("web.shop") == {"gcp-use4": 1, "use1-a": 1, "use1-b": 1, "use2-a": 1}

    local_loads = []
    previous = base
    for percent in (100, 80, 60, 40):
        degraded = [
            base.cluster(name).model_copy(
                update={"health": HealthState.DEGRADED, "healthy_percent": percent}
            )
            for name in ("use1-a", "use1-b")
        ]
        previous = replan(previous, ChangeSet(clusters=tuple(degraded)))
        # degraded clusters keep the replicas they run: only traffic reacts
        assert previous.placement("web.shop") == base.placement("web.shop")
        levels = previous.traffic("web.shop", "use1-a")
        assert [list(level.weights) for level in levels[:2]] == [["use1-a"], ["use1-b"]]
        assert sum(level.load for level in levels) == 100
        local_loads.append(levels[0].load)
    # Envoy overprovisioning 1.4: 80 % healthy still takes everything, 60 % keeps 84, 40 % 56
    assert local_loads == [100, 100, 84, 56]

    down = replan(previous, what_if_changes(previous, ["down:use1-a", "down:use1-b"]))
    assert down.placement("web.shop") == {"gcp-use4": 2, "use2-a": 2}
    levels = down.traffic("web.shop", "use1-a")
    assert [(dict(level.weights), level.load) for level in levels] == [
        ({"use2-a": 100}, 100),
        ({"gcp-use4": 100}, 0),
    ]


def test_draining_a_cloud_moves_every_replica_and_route_out_of_it() -> None:
    clusters = [
        cluster("aws-1", "aws", "us-east-1", "a"),
        cluster("aws-2", "aws", "us-west-2", "a", cost_per_unit_hour=0.01),
        cluster("gcp-1", "gcp", "us-east4", "a"),
        cluster("azure-1", "azure", "eastus", "a"),
    ]
    services = [
        service("api.shop", replicas=2, units_per_replica=5),
        service("db.shop", replicas=1, units_per_replica=10, denied_clouds=("aws",)),
    ]
    base = plan(scenario(clusters, services, demand={"api.shop": {"aws-1": 50}}))
    assert set(base.placement("api.shop")) <= {"aws-1", "aws-2"}
    db_before = base.placement("db.shop")

    drained = replan(base, what_if_changes(base, ["drain:aws"]))
    assert drained.placement("api.shop")
    assert not set(drained.placement("api.shop")) & {"aws-1", "aws-2"}
    assert drained.placement("db.shop") == db_before  # not on aws: untouched
    for source in drained.clusters:
        for level in drained.traffic("api.shop", source):
            assert not set(level.weights) & {"aws-1", "aws-2"}
    why = drained.explain("api.shop")["aws-2"]
    assert (why.chosen, why.constraint) == (False, "draining")


def _europe(close: bool) -> tuple:
    clusters = [
        cluster("gcp-euw1", "gcp", "europe-west1", "b", cost_per_unit_hour=0.060),
        cluster("azure-weu", "azure", "westeurope", "1", cost_per_unit_hour=0.040),
    ]
    overrides = (
        (NetworkOverride(source="gcp/europe-west1", target="azure/westeurope", latency_ms=6),)
        if close
        else ()
    )
    svc = service(
        "search.shop", replicas=1, bytes_per_request=0, objectives={"cost": 1, "latency": 1}
    )
    return clusters, svc, NetworkSpec(overrides=overrides)


def test_cheaper_cloud_wins_when_latency_allows() -> None:
    clusters, svc, network = _europe(close=True)
    demand = {"search.shop": {"gcp-euw1": 100}}
    near = plan(scenario(clusters, [svc], network=network, demand=demand))
    assert near.placement("search.shop") == {"azure-weu": 1}
    why = near.explain("search.shop")
    assert why["azure-weu"].score["cost"] == 1.0
    assert why["gcp-euw1"].constraint == "score"

    clusters, svc, network = _europe(close=False)
    far = plan(scenario(clusters, [svc], network=network, demand=demand))
    assert far.placement("search.shop") == {"gcp-euw1": 1}
    assert far.explain("search.shop")["azure-weu"].score["latency"] == 0.0


def test_data_residency_keeps_an_eu_service_in_the_eu_even_when_full() -> None:
    clusters = [
        cluster("gcp-euw1", "gcp", "europe-west1", "b", capacity=10, load=8),
        cluster("azure-weu", "azure", "westeurope", "1", capacity=10, load=9),
        cluster("aws-use1", "aws", "us-east-1", "a", capacity=100),
    ]
    gdpr = service(
        "profiles.eu",
        replicas=4,
        units_per_replica=1,
        allowed_regions=("europe-west1", "westeurope"),
    )
    result = plan(scenario(clusters, [gdpr], demand={"profiles.eu": {"aws-use1": 500}}))
    assert result.placement("profiles.eu") == {"azure-weu": 1, "gcp-euw1": 2}
    problem = result.unschedulable["profiles.eu"]
    assert (problem.constraint, problem.missing, problem.desired) == ("allowed_regions", 1, 4)
    assert "1 of 4 replica(s)" in problem.message
    why = result.explain("profiles.eu")
    assert why["aws-use1"].constraint == "allowed_regions"
    assert "data residency" in why["aws-use1"].reason


def test_traffic_returns_to_a_recovered_cluster_only_after_failback_window() -> None:
    clusters = [
        cluster("a-1", "aws", "us-east-1", "a", recovered_at=1000.0),
        cluster("a-2", "aws", "us-east-1", "b"),
    ]
    svc = service("pay.shop", replicas=2, spread={"over": "zone"}, failover={"failback_after": 300})
    during = plan(scenario(clusters, [svc], now=1200.0))
    assert during.placement("pay.shop") == {"a-1": 1, "a-2": 1}
    levels = during.traffic("pay.shop", "a-1")
    assert [(dict(level.weights), level.load) for level in levels] == [({"a-2": 100}, 100)]
    after = replan(during, ChangeSet(now=1300.0))
    levels = after.traffic("pay.shop", "a-1")
    assert [(dict(level.weights), level.load) for level in levels] == [
        ({"a-1": 100}, 100),
        ({"a-2": 100}, 0),
    ]


def test_small_load_change_moves_nothing_but_a_big_price_cut_does() -> None:
    clusters = [
        cluster("c-1", "aws", "us-east-1", "a", cost_per_unit_hour=0.050),
        cluster("c-2", "gcp", "us-east4", "a", cost_per_unit_hour=0.051),
    ]
    svc = service("cart.shop", replicas=1, objectives={"cost": 1, "latency": 0, "headroom": 1})
    base = plan(scenario(clusters, [svc]))
    assert base.placement("cart.shop") == {"c-1": 1}
    busier = base.cluster("c-1").model_copy(update={"load": 3.0})
    assert replan(base, ChangeSet(clusters=(busier,))).placement("cart.shop") == {"c-1": 1}
    cheaper = base.cluster("c-2").model_copy(update={"cost_per_unit_hour": 0.02})
    moved = replan(base, ChangeSet(clusters=(cheaper,)))
    # c-2 is not running the service, so it is not re-planned until the service is touched
    assert moved.placement("cart.shop") == {"c-1": 1}
    touched = replan(moved, ChangeSet(services=(svc,)))
    assert touched.placement("cart.shop") == {"c-2": 1}


def test_anti_affinity_and_affinity_are_hard() -> None:
    clusters = [cluster(f"c-{i}", "aws", "us-east-1", f"z{i}") for i in range(3)]
    services = [
        service("db.shop", replicas=1),
        service("cache.shop", replicas=1, affinity=("db.shop",)),
        service("batch.shop", replicas=2, anti_affinity=("db.shop",)),
    ]
    result = plan(scenario(clusters, services))
    db = set(result.placement("db.shop"))
    assert set(result.placement("cache.shop")) == db
    assert not set(result.placement("batch.shop")) & db
    assert result.explain("batch.shop")[db.pop()].constraint == "anti_affinity"


def test_min_domains_that_cannot_be_met_places_nothing_and_says_why() -> None:
    clusters = [
        cluster("c-1", "aws", "us-east-1", "a"),
        cluster("c-2", "aws", "us-east-1", "b", health="unreachable"),
    ]
    svc = service("ha.shop", replicas=2, spread={"over": "zone", "min_domains": 2})
    result = plan(scenario(clusters, [svc]))
    assert result.placement("ha.shop") == {}
    problem = result.unschedulable["ha.shop"]
    assert (problem.constraint, problem.missing) == ("spread.min_domains", 2)
    assert result.traffic("ha.shop", "c-1") == ()


def test_a_new_cluster_attracts_only_the_services_whose_score_gain_justifies_a_move() -> None:
    clusters = [cluster("old-1", "aws", "us-east-1", "a", cost_per_unit_hour=0.10)]
    services = [
        service("ledger.shop", objectives={"cost": 0, "latency": 1, "headroom": 0}),
        service("batch.shop", objectives={"cost": 1, "latency": 0, "headroom": 0}),
    ]
    demand = {"ledger.shop": {"old-1": 10}, "batch.shop": {"old-1": 10}}
    base = plan(scenario(clusters, services, demand=demand))
    assert base.placements == {"batch.shop": {"old-1": 1}, "ledger.shop": {"old-1": 1}}
    newcomer = cluster("new-1", "aws", "us-east-1", "a", cost_per_unit_hour=0.02)
    after = replan(base, ChangeSet(clusters=(newcomer,)))
    # same latency for ledger: no gain, no move; batch pays a fifth of the price: it moves
    assert after.placements == {"batch.shop": {"new-1": 1}, "ledger.shop": {"old-1": 1}}
    assert after.moved == {"batch.shop"}
    assert "already ran here" in after.explain("ledger.shop")["old-1"].reason
