"""Traffic levels: integer weights, Envoy-style spill between levels, panic, explicit order."""

from __future__ import annotations

from federation.placement import largest_remainder
from federation.placement.traffic import build_levels

ENVOY = 100 / 1.4


def test_largest_remainder_sums_exactly_and_breaks_ties_by_name() -> None:
    assert largest_remainder([("b", 1), ("a", 1), ("c", 1)]) == {"a": 34, "b": 33, "c": 33}
    assert largest_remainder([("x", 2), ("y", 1)]) == {"x": 67, "y": 33}
    assert largest_remainder([("only", 0.3)]) == {"only": 100}


def test_weights_follow_replicas_times_health() -> None:
    levels = build_levels([[("a", 3, 1.0), ("b", 1, 1.0), ("c", 2, 0.5)]], ENVOY)
    assert [(dict(level.weights), level.load) for level in levels] == [
        ({"a": 60, "b": 20, "c": 20}, 100)
    ]


def test_spill_is_gradual_with_overprovisioning_1_4() -> None:
    def first_level_load(health: float) -> int:
        return build_levels([[("near", 2, health)], [("far", 2, 1.0)]], ENVOY)[0].load

    loads = [first_level_load(h / 100) for h in (100, 75, 70, 50, 25, 10)]
    assert loads == [100, 100, 98, 70, 35, 14]
    assert loads == sorted(loads, reverse=True)


def test_min_healthy_percent_sets_where_spill_starts() -> None:
    strict = build_levels([[("near", 1, 0.9)], [("far", 1, 1.0)]], 100.0)
    assert [level.load for level in strict] == [90, 10]


def test_when_every_level_is_weak_loads_are_normalised() -> None:
    levels = build_levels([[("a", 1, 0.2)], [("b", 1, 0.1)]], ENVOY)
    assert [level.load for level in levels] == [67, 33]


def test_dead_clusters_get_no_weight_and_empty_levels_vanish() -> None:
    levels = build_levels([[("a", 1, 0.0)], [("b", 1, 1.0), ("c", 1, 0.0)]], ENVOY)
    assert [(dict(level.weights), level.load) for level in levels] == [({"b": 100}, 100)]


def test_panic_routes_by_replicas_when_nothing_is_healthy() -> None:
    levels = build_levels([[("a", 1, 0.0)], [("b", 3, 0.0), ("c", 1, 0.0)]], ENVOY)
    assert [(dict(level.weights), level.load) for level in levels] == [
        ({"a": 100}, 100),
        ({"b": 75, "c": 25}, 0),
    ]
