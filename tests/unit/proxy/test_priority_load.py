"""Envoy's priority load split and panic flags: exact values and properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.loadbalancer import priority_load


def approx(values: list[float]) -> list[float]:
    return [pytest.approx(v) for v in values]  # type: ignore[misc]


@pytest.mark.parametrize(
    ("levels", "loads", "panic"),
    [
        # all healthy: everything stays on the preferred level
        ([(5, 5), (5, 5)], [100.0, 0.0], [False, False]),
        # 4 of 5 healthy: 1.4 × 80 = 112 → still 100 %
        ([(4, 5), (5, 5)], [100.0, 0.0], [False, False]),
        # Envoy's example: 2 of 5 healthy → 56 % stays, 44 % spills
        ([(2, 5), (5, 5)], [56.0, 44.0], [False, False]),
        # three levels: 0 % + 56 % + rest
        ([(0, 3), (2, 5), (5, 5)], [0.0, 56.0, 44.0], [False, False, False]),
        # total short of 100: loads scale up (56 + 28 = 84 → 66.7 / 33.3); both below 50 %
        ([(2, 5), (1, 5)], [56 / 0.84, 28 / 0.84], [True, True]),
        # total short of 100 but P0 at 60 % healthy: only P1 (20 %) panics
        ([(3, 5), (0, 5)], [100.0, 0.0], [False, True]),
        # P0 at 25 % healthy but P1 fully healthy: normalized 100 → no panic anywhere
        ([(1, 4), (4, 4)], [35.0, 65.0], [False, False]),
        # both at 25 %: normalized 70 → both in panic, split 50/50
        ([(1, 4), (1, 4)], [50.0, 50.0], [True, True]),
        # nothing healthy: first level takes all, in panic
        ([(0, 4), (0, 2)], [100.0, 0.0], [True, False]),
        # empty levels never get traffic
        ([(0, 0), (3, 3)], [0.0, 100.0], [False, False]),
        ([(0, 0), (0, 3)], [0.0, 100.0], [False, True]),
        ([(0, 0)], [0.0], [False]),
        ([], [], []),
    ],
)
def test_priority_load_matches_envoy(
    levels: list[tuple[int, int]], loads: list[float], panic: list[bool]
) -> None:
    got_loads, got_panic = priority_load(levels)
    assert got_loads == approx(loads)
    assert got_panic == panic


def test_overprovisioning_one_spills_as_soon_as_a_host_is_down() -> None:
    loads, _ = priority_load([(4, 5), (5, 5)], overprovisioning=1.0)
    assert loads == approx([80.0, 20.0])


def test_panic_disabled_routes_nothing_when_nothing_is_healthy() -> None:
    assert priority_load([(0, 4)], panic_threshold=0.0) == ([0.0], [False])


levels_strategy = st.lists(
    st.integers(min_value=0, max_value=20).flatmap(
        lambda total: st.tuples(st.integers(min_value=0, max_value=total), st.just(total))
    ),
    max_size=6,
)


@given(levels_strategy)
def test_loads_sum_to_100_whenever_any_endpoint_exists(levels: list[tuple[int, int]]) -> None:
    loads, panic = priority_load(levels)
    assert all(load >= 0.0 for load in loads)
    if any(total for _, total in levels):
        assert math.isclose(sum(loads), 100.0)
    else:
        assert sum(loads) == 0.0
    for (healthy, total), load, in_panic in zip(levels, loads, panic, strict=True):
        if total == 0:
            assert load == 0.0 and not in_panic
        if load > 0.0 and not in_panic:
            assert healthy > 0


@given(levels_strategy)
def test_a_level_never_gets_more_than_its_scaled_health(levels: list[tuple[int, int]]) -> None:
    loads, _ = priority_load(levels)
    health = [min(100.0, 140.0 * h / t) if t else 0.0 for h, t in levels]
    total = min(100.0, sum(health))
    if total > 0:
        for load, level_health in zip(loads, health, strict=True):
            assert load <= level_health * 100.0 / total + 1e-9
