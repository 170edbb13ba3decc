"""The engine's planned spill reaches the gateway: ``cluster_health`` in a snapshot's route
becomes the peer endpoint's health, and the balancer splits traffic the way the engine did."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from federation.model.placement import ClusterSpec, FailoverPolicy, Scenario, ServicePolicy
from federation.model.routing import (
    Locality,
    PeerGateway,
    PriorityLevel,
    RoutingModel,
    ServiceRoute,
)
from federation.placement import plan
from gateway.translate import translate_model
from proxy.clusters.state import UpstreamState
from proxy.loadbalancer import LoadBalancer


def peer(name: str, region: str) -> PeerGateway:
    return PeerGateway(
        cluster=name,
        trust_domain=f"{name}.test",
        spiffe_id=f"spiffe://{name}.test/isthmus/gateway/{name}",
        addresses=(f"127.0.0.1:{15000 + ord(name[0])}",),
        locality=Locality(cloud="aws", region=region),
    )


def model(health: dict[str, float]) -> RoutingModel:
    route = ServiceRoute(
        name="checkout.shop",
        priorities=(PriorityLevel(weights={"b": 100}), PriorityLevel(weights={"c": 100})),
        cluster_health=health,
    )
    return RoutingModel(
        version=1,
        cluster="a",
        trust_domain="a.test",
        locality=Locality(cloud="aws", region="r1"),
        peers=(peer("b", "r1"), peer("c", "r2")),
        services=(route,),
    )


def split(health: dict[str, float], draws: int = 20_000) -> tuple[list[float], Counter[str]]:
    route = translate_model(model(health)).routes["checkout.shop"]
    state, balancer, rng = UpstreamState(), LoadBalancer(), random.Random(7)
    loads, _ = balancer.priority_loads(route, state, now=0.0)
    picks: Counter[str] = Counter()
    for _ in range(draws):
        endpoint = balancer.pick(route, state, 0.0, rng).endpoint
        assert endpoint is not None
        picks[endpoint.locality.cluster] += 1
    return loads, picks


def test_a_peer_at_40_percent_health_keeps_56_percent_and_spills_44() -> None:
    loads, picks = split({"b": 0.4})
    assert loads == pytest.approx([56.0, 44.0])
    assert picks["b"] / 20_000 == pytest.approx(0.56, abs=0.02)
    assert picks["c"] / 20_000 == pytest.approx(0.44, abs=0.02)


def test_a_fully_healthy_peer_keeps_everything() -> None:
    loads, picks = split({})
    assert loads == [100.0, 0.0]
    assert set(picks) == {"b"}


def test_the_gateway_spills_as_the_engine_planned() -> None:
    """The engine's level loads for a 40 %-healthy preferred cluster equal the gateway's."""
    scenario = Scenario(
        clusters=(
            ClusterSpec(name="a", cloud="aws", region="r1", zone="z1", capacity=10),
            ClusterSpec(
                name="b", cloud="aws", region="r1", zone="z2", capacity=10, healthy_percent=40
            ),
            ClusterSpec(name="c", cloud="aws", region="r2", capacity=10),
        ),
        services=(
            ServicePolicy(
                name="checkout.shop",
                replicas=2,
                clusters=("b", "c"),
                failover=FailoverPolicy(failback_after=0),
            ),
        ),
    )
    result = plan(scenario)
    assert result.placement("checkout.shop") == {"b": 1, "c": 1}
    planned = [level.load for level in result.traffic("checkout.shop", "a")]
    loads, _ = split({"b": 0.4})
    assert [round(load) for load in loads] == planned == [56, 44]
