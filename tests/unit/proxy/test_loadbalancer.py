"""Load balancer: request counts per endpoint over many seeded picks."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.clusters import UpstreamState
from proxy.loadbalancer import LoadBalancer
from proxy.outlier import Outcome
from tests.unit.proxy.builders import count_picks, ep, route

N = 20_000


def level_share(counts: dict[str, int], prefix: str) -> float:
    return sum(v for k, v in counts.items() if k.startswith(prefix)) / sum(counts.values())


def mark_dead(state: UpstreamState, *keys: str) -> None:
    for key in keys:
        state.record_probe(key, False, 0.0)
        state.record_probe(key, False, 0.0)


def test_all_healthy_first_level_gets_everything() -> None:
    r = route([ep(f"a-{i}") for i in range(3)], [ep("b-0")])
    counts = count_picks(LoadBalancer(), r, UpstreamState(), N)
    assert counts["b-0"] == 0
    for i in range(3):
        assert abs(counts[f"a-{i}"] / N - 1 / 3) < 0.02


def test_spill_two_of_five_healthy_is_56_44() -> None:
    r = route([ep(f"a-{i}") for i in range(5)], [ep(f"b-{i}") for i in range(5)])
    state = UpstreamState()
    mark_dead(state, "a-0", "a-1", "a-2")
    counts = count_picks(LoadBalancer(), r, state, N)
    assert counts["a-0"] == counts["a-1"] == counts["a-2"] == 0
    assert abs(level_share(counts, "a-") - 0.56) < 0.015
    assert abs(level_share(counts, "b-") - 0.44) < 0.015
    assert abs(counts["a-3"] - counts["a-4"]) / N < 0.03


def test_spill_follows_outlier_ejections_too() -> None:
    r = route([ep(f"a-{i}") for i in range(5)], [ep(f"b-{i}") for i in range(5)])
    state = UpstreamState()
    for key in ("a-0", "a-1", "a-2"):
        for _ in range(3):
            state.record(r, r.priorities[0].endpoints[int(key[-1])], Outcome.HTTP_5XX, 0.0)
    counts = count_picks(LoadBalancer(), r, state, N, now=0.5)
    assert abs(level_share(counts, "a-") - 0.56) < 0.015


def test_weights_within_a_level() -> None:
    r = route([ep("a-0", weight=1), ep("a-1", weight=2), ep("a-2", weight=7)])
    counts = count_picks(LoadBalancer(), r, UpstreamState(), N)
    assert abs(counts["a-0"] / N - 0.1) < 0.01
    assert abs(counts["a-1"] / N - 0.2) < 0.01
    assert abs(counts["a-2"] / N - 0.7) < 0.01


def test_panic_routes_to_every_endpoint_of_the_level() -> None:
    r = route([ep(f"a-{i}") for i in range(4)])
    state = UpstreamState()
    mark_dead(state, "a-0", "a-1", "a-2")  # 25 % healthy < 50 % panic threshold
    rng = random.Random(3)
    picks = [LoadBalancer().pick(r, state, 0.0, rng) for _ in range(4000)]
    assert all(p.panic and p.level == 0 for p in picks)
    counts = count_picks(LoadBalancer(), r, state, N)
    for i in range(4):
        assert abs(counts[f"a-{i}"] / N - 0.25) < 0.02


def test_no_panic_at_half_healthy_only_healthy_endpoints_get_traffic() -> None:
    r = route([ep(f"a-{i}") for i in range(4)])
    state = UpstreamState()
    mark_dead(state, "a-0", "a-1")
    counts = count_picks(LoadBalancer(), r, state, N)
    assert counts["a-0"] == counts["a-1"] == 0
    assert counts["a-2"] + counts["a-3"] == N


def test_lower_level_with_capacity_prevents_panic() -> None:
    r = route([ep(f"a-{i}") for i in range(4)], [ep(f"b-{i}") for i in range(4)])
    state = UpstreamState()
    mark_dead(state, "a-0", "a-1", "a-2")
    counts = count_picks(LoadBalancer(), r, state, N)
    assert counts["a-0"] == counts["a-1"] == counts["a-2"] == 0
    assert abs(counts["a-3"] / N - 0.35) < 0.015


def test_everything_dead_panics_on_first_level_and_panic_can_be_disabled() -> None:
    r = route([ep("a-0")], [ep("b-0")])
    state = UpstreamState()
    mark_dead(state, "a-0", "b-0")
    assert count_picks(LoadBalancer(), r, state, 100) == {"a-0": 100}
    assert count_picks(LoadBalancer(panic_threshold=0), r, state, 10) == {"no_healthy_upstream": 10}


def test_route_without_endpoints_says_so() -> None:
    pick = LoadBalancer().pick(route(), UpstreamState(), 0.0, random.Random(1))
    assert pick.endpoint is None and pick.reason == "no_endpoints"
    zero = route([ep("a-0", weight=0)])
    assert LoadBalancer().pick(zero, UpstreamState(), 0.0, random.Random(1)).reason == (
        "no_endpoints"
    )


def test_p2c_prefers_the_less_loaded_endpoint() -> None:
    r = route([ep("a-0"), ep("a-1")])
    state = UpstreamState()
    for _ in range(5):
        state.begin("a-0")
    counts = count_picks(LoadBalancer(), r, state, N)
    # a-0 wins only when both draws are a-0: 1/4 of the time
    assert abs(counts["a-0"] / N - 0.25) < 0.015
    assert abs(counts["a-1"] / N - 0.75) < 0.015
    for _ in range(5):
        state.end("a-0")
    assert state.in_flight == {}
    counts = count_picks(LoadBalancer(), r, state, N)
    assert abs(counts["a-0"] / N - 0.5) < 0.015


def test_p2c_load_is_relative_to_weight() -> None:
    r = route([ep("a-0", weight=1), ep("a-1", weight=3)])
    state = UpstreamState()
    state.begin("a-0")
    for _ in range(3):
        state.begin("a-1")
    # equal load per unit of weight: the split stays 1:3
    counts = count_picks(LoadBalancer(), r, state, N)
    assert abs(counts["a-0"] / N - 0.25) < 0.015
    state.end("a-0")
    # a-0 idle: it wins whenever drawn at least once: 1 - 0.75² = 43.75 %
    counts = count_picks(LoadBalancer(), r, state, N)
    assert abs(counts["a-0"] / N - 0.4375) < 0.015


def test_in_flight_balances_a_closed_loop() -> None:
    """Requests that stay in flight: p2c keeps the spread tight (max - min small)."""
    r = route([ep(f"a-{i}") for i in range(8)])
    state = UpstreamState()
    lb, rng = LoadBalancer(), random.Random(5)
    for _ in range(800):
        pick = lb.pick(r, state, 0.0, rng)
        assert pick.endpoint is not None
        state.begin(pick.endpoint.key)
    assert max(state.in_flight.values()) - min(state.in_flight.values()) <= 3


def test_ejection_and_unejection_in_time() -> None:
    r = route([ep("a-0"), ep("a-1"), ep("a-2")])
    state, lb = UpstreamState(), LoadBalancer()
    bad = r.priorities[0].endpoints[0]
    for _ in range(3):
        state.record(r, bad, Outcome.GATEWAY_ERROR, 10.0)
    during = count_picks(lb, r, state, 3000, now=10.9)
    assert during["a-0"] == 0 and during["a-1"] + during["a-2"] == 3000
    after = count_picks(lb, r, state, 3000, now=11.0)  # base ejection is 1 s
    assert abs(after["a-0"] / 3000 - 1 / 3) < 0.03


def test_retry_avoids_the_failed_cluster_and_tried_endpoints() -> None:
    r = route([ep("a-0"), ep("a-1")], [ep("b-0"), ep("c-0", weight=3)])
    state, lb, rng = UpstreamState(), LoadBalancer(), random.Random(9)
    keys = [
        lb.pick(r, state, 0.0, rng, exclude=frozenset({"a-0"}), avoid_cluster="a")
        for _ in range(2000)
    ]
    got = {p.endpoint.key for p in keys if p.endpoint}
    assert got == {"b-0", "c-0"}
    c_share = sum(1 for p in keys if p.endpoint and p.endpoint.key == "c-0") / 2000
    assert abs(c_share - 0.75) < 0.04
    # without a cluster to avoid, the untried endpoint of the preferred level is used
    same = {lb.pick(r, state, 0.0, rng, exclude=frozenset({"a-0"})).endpoint for _ in range(50)}
    assert {e.key for e in same if e} == {"a-1"}
    # only the avoided cluster is left: fall back to it rather than fail
    only_a = route([ep("a-0"), ep("a-1")])
    pick = lb.pick(only_a, state, 0.0, rng, exclude=frozenset({"a-0"}), avoid_cluster="a")
    assert pick.endpoint is not None and pick.endpoint.key == "a-1"
    pick = lb.pick(only_a, state, 0.0, rng, exclude=frozenset({"a-0", "a-1"}))
    assert pick.endpoint is None and pick.reason == "no_untried_upstream"


def test_retry_skips_dead_endpoints_of_lower_levels() -> None:
    r = route([ep("a-0")], [ep("b-0")], [ep("c-0")])
    state = UpstreamState()
    mark_dead(state, "b-0")
    pick = LoadBalancer().pick(r, state, 0.0, random.Random(1), exclude=frozenset({"a-0"}))
    assert pick.endpoint is not None and pick.endpoint.key == "c-0" and pick.level == 2


def test_deterministic_under_a_seed_and_route_swap_rebuilds() -> None:
    r = route([ep(f"a-{i}", weight=i + 1) for i in range(4)])
    state = UpstreamState()
    first = [LoadBalancer().pick(r, state, 0.0, random.Random(42)) for _ in range(1)]
    rng1, rng2, lb = random.Random(42), random.Random(42), LoadBalancer()
    seq1 = [lb.pick(r, state, 0.0, rng1).endpoint for _ in range(200)]
    seq2 = [LoadBalancer().pick(r, state, 0.0, rng2).endpoint for _ in range(200)]
    assert seq1 == seq2 and first[0].endpoint == seq1[0]
    swapped = route([ep("z-0")])
    assert lb.pick(swapped, state, 0.0, rng1).endpoint == swapped.priorities[0].endpoints[0]


keys_strategy = st.lists(st.sampled_from([f"a-{i}" for i in range(4)] + ["b-0", "b-1"]))


@settings(max_examples=200, deadline=None)
@given(
    dead=keys_strategy,
    exclude=keys_strategy,
    avoid=st.sampled_from([None, "a", "b"]),
    seed=st.integers(0, 2**32),
)
def test_pick_never_returns_an_excluded_or_foreign_endpoint(
    dead: list[str], exclude: list[str], avoid: str | None, seed: int
) -> None:
    r = route([ep(f"a-{i}") for i in range(4)], [ep("b-0"), ep("b-1")])
    state = UpstreamState()
    mark_dead(state, *set(dead))
    pick = LoadBalancer().pick(
        r, state, 0.0, random.Random(seed), exclude=frozenset(exclude), avoid_cluster=avoid
    )
    all_keys = {e.key for g in r.priorities for e in g.endpoints}
    if pick.endpoint is None:
        assert exclude and pick.reason == "no_untried_upstream"
    else:
        assert pick.endpoint.key in all_keys - set(exclude)
    if not exclude:
        assert pick.endpoint is not None  # panic guarantees something is tried
