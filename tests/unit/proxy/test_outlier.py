"""Passive outlier detection and active health checks, with explicit ``now``."""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.clusters import UpstreamState
from proxy.loadbalancer import LoadBalancer
from proxy.outlier import (
    Ejected,
    HealthChanged,
    HealthChecker,
    Outcome,
    OutlierDetector,
    OutlierSettings,
    Unejected,
)
from tests.unit.proxy.builders import count_picks, ep, route


def fail(
    det: OutlierDetector,
    key: str,
    times: int,
    now: float,
    *,
    group: int = 10,
    outcome: Outcome = Outcome.HTTP_5XX,
) -> Ejected | None:
    event = None
    for _ in range(times):
        event = det.record(key, outcome, now, group) or event
    return event


def test_three_consecutive_failures_eject_for_one_second() -> None:
    det = OutlierDetector()
    assert fail(det, "a", 2, 0.0) is None
    assert not det.is_ejected("a", 0.0)
    event = det.record("a", Outcome.HTTP_5XX, 0.0, 10)
    assert event == Ejected("a", 1.0, "consecutive_5xx", 1)
    assert det.is_ejected("a", 0.999)
    assert not det.is_ejected("a", 1.0)


def test_a_success_resets_the_count() -> None:
    det = OutlierDetector()
    fail(det, "a", 2, 0.0)
    det.record("a", Outcome.SUCCESS, 0.0, 10)
    assert fail(det, "a", 2, 0.0) is None
    assert not det.is_ejected("a", 0.0)


def test_each_failure_kind_has_its_threshold() -> None:
    for outcome, reason in [
        (Outcome.GATEWAY_ERROR, "consecutive_gateway_errors"),
        (Outcome.CONNECT_FAILURE, "consecutive_connect_failures"),
        (Outcome.TIMEOUT, "consecutive_timeouts"),
    ]:
        det = OutlierDetector()
        event = fail(det, "a", 3, 0.0, outcome=outcome)
        assert event is not None and event.reason == reason
    # gateway errors are 5xx too: 2 × 500 + 1 × 503 reaches the 5xx threshold
    det = OutlierDetector()
    fail(det, "a", 2, 0.0)
    event = det.record("a", Outcome.GATEWAY_ERROR, 0.0, 10)
    assert event is not None and event.reason == "consecutive_5xx"
    # a threshold of 0 disables that detector
    det = OutlierDetector(OutlierSettings(consecutive_5xx=0))
    assert fail(det, "a", 50, 0.0) is None


def test_ejection_time_grows_and_is_capped() -> None:
    det = OutlierDetector()
    now, durations = 0.0, []
    for _ in range(8):
        event = fail(det, "a", 3, now)
        assert event is not None
        durations.append(event.until - now)
        now = event.until  # fails again as soon as it is back
    assert durations == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_ejection_count_decays_after_a_healthy_period() -> None:
    det = OutlierDetector()
    for now in (0.0, 1.0, 3.0):  # ejections 1, 2 and 3 (1 s, 2 s, 4 s)
        fail(det, "a", 3, now)
    # back at 7.0; 25 s healthy = two decay periods of 10 s: count 3 → 1, next is #2 (2 s)
    event = fail(det, "a", 3, 32.0)
    assert event is not None and event.count == 2 and event.until == 34.0


def test_failures_while_ejected_do_not_extend_it() -> None:
    det = OutlierDetector()
    fail(det, "a", 3, 0.0)
    assert fail(det, "a", 10, 0.5) is None
    assert not det.is_ejected("a", 1.0)
    assert fail(det, "a", 2, 1.0) is None  # counting restarted after the ejection


def test_max_ejection_percent_limits_ejections_per_group() -> None:
    det = OutlierDetector()
    assert fail(det, "a", 3, 0.0, group=4) is not None
    assert fail(det, "b", 3, 0.0, group=4) is not None
    assert fail(det, "c", 3, 0.0, group=4) is None  # 2 of 4 = 50 % already out
    assert det.ejected_count(0.0) == 2
    # once one returns, the next failure of "c" ejects it
    assert det.record("c", Outcome.HTTP_5XX, 1.0, 4) is not None


def test_a_lone_endpoint_can_be_ejected() -> None:
    assert fail(OutlierDetector(), "a", 3, 0.0, group=1) is not None


def test_tick_reports_each_unejection_once() -> None:
    det = OutlierDetector()
    fail(det, "a", 3, 0.0)
    fail(det, "b", 3, 0.5)
    assert det.tick(0.9) == []
    assert det.tick(1.2) == [Unejected("a")]
    assert det.tick(5.0) == [Unejected("b")]
    assert det.tick(6.0) == []


def test_retain_forgets_removed_endpoints() -> None:
    det = OutlierDetector()
    fail(det, "a", 3, 0.0)
    fail(det, "b", 2, 0.0)
    det.retain({"b"})
    assert not det.is_ejected("a", 0.0)
    assert det.record("b", Outcome.HTTP_5XX, 0.0, 10) is not None


def test_max_ejection_percent_keeps_half_the_route_serving() -> None:
    """Through the state and balancer: 4 endpoints all failing, 2 stay in rotation."""
    r = route([ep(f"a-{i}") for i in range(4)])
    state = UpstreamState()
    events = [
        state.record(r, endpoint, Outcome.GATEWAY_ERROR, 0.0)
        for endpoint in r.priorities[0].endpoints
        for _ in range(3)
    ]
    assert sum(1 for e in events if e is not None) == 2
    counts = count_picks(LoadBalancer(), r, state, 4000, now=0.5)
    assert counts["a-0"] == counts["a-1"] == 0
    assert counts["a-2"] + counts["a-3"] == 4000


def test_outlier_ejection_is_per_service() -> None:
    peer = ep("b-gw", kind="peer")
    one = route([peer], [ep("c-gw")], service="one.ns")
    two = route([peer], [ep("c-gw")], service="two.ns")
    state = UpstreamState()
    for _ in range(3):
        state.record(one, peer, Outcome.GATEWAY_ERROR, 0.0)
    assert not state.is_healthy("one.ns", "b-gw", 0.1)
    assert state.is_healthy("two.ns", "b-gw", 0.1)
    assert state.healthy_counts(one.priorities[0], 0.1, service="one.ns") == (0, 1)
    lb = LoadBalancer()
    assert count_picks(lb, one, state, 100, now=0.1) == {"c-gw": 100}
    assert count_picks(lb, two, state, 100, now=0.1) == {"b-gw": 100}
    assert state.tick(2.0) == [("one.ns", Unejected("b-gw"))]


def test_health_checker_thresholds() -> None:
    hc = HealthChecker()
    assert hc.is_healthy("b")
    assert hc.record_probe("b", False, 1.0) is None
    assert hc.is_healthy("b")  # one lost probe does not move traffic
    assert hc.record_probe("b", False, 2.0) == HealthChanged("b", False, 2.0)
    assert hc.record_probe("b", False, 3.0) is None
    assert not hc.is_healthy("b")
    assert hc.record_probe("b", True, 4.0) == HealthChanged("b", True, 4.0)
    assert hc.is_healthy("b")
    assert hc.record_probe("b", False, 5.0) is None
    assert hc.record_probe("b", True, 6.0) is None
    assert hc.record_probe("b", False, 7.0) is None  # failures must be consecutive


def test_dead_peer_cluster_stops_getting_traffic_after_two_probes() -> None:
    r = route([ep("b-gw", kind="peer")], [ep("c-gw", kind="peer")])
    state, lb, rng = UpstreamState(), LoadBalancer(), random.Random(1)
    assert count_picks(lb, r, state, 100, now=0.0) == {"b-gw": 100}
    state.record_probe("b-gw", False, 1.0)
    assert count_picks(lb, r, state, 100, now=1.0) == {"b-gw": 100}
    state.record_probe("b-gw", False, 2.0)
    assert count_picks(lb, r, state, 100, now=2.0) == {"c-gw": 100}
    state.record_probe("b-gw", True, 3.0)  # failback on the first good probe
    assert lb.pick(r, state, 3.0, rng).endpoint == r.priorities[0].endpoints[0]
    state.retain({"c-gw"})
    assert state.health.unhealthy() == frozenset()


def test_status_and_failure_classification() -> None:
    from proxy.outlier import outcome_for_status
    from proxy.retry import FailureKind, outcome_for_failure

    assert [outcome_for_status(s) for s in (200, 404, 500, 502, 503, 504, 505)] == [
        Outcome.SUCCESS,
        Outcome.SUCCESS,
        Outcome.HTTP_5XX,
        Outcome.GATEWAY_ERROR,
        Outcome.GATEWAY_ERROR,
        Outcome.GATEWAY_ERROR,
        Outcome.HTTP_5XX,
    ]
    assert outcome_for_failure(FailureKind.GOAWAY) is None
    assert outcome_for_failure(FailureKind.CONNECT_FAILURE) is Outcome.CONNECT_FAILURE
    assert outcome_for_failure(FailureKind.PER_TRY_TIMEOUT) is Outcome.TIMEOUT


def test_priority_loads_reports_the_current_split() -> None:
    r = route([ep(f"a-{i}") for i in range(5)], [ep("b-0")])
    state = UpstreamState()
    for key in ("a-0", "a-1", "a-2"):
        state.record_probe(key, False, 0.0)
        state.record_probe(key, False, 0.0)
    loads, panic = LoadBalancer().priority_loads(r, state, 0.0)
    assert [round(x, 6) for x in loads] == [56.0, 44.0] and panic == [False, False]


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(1, 8),
    events=st.lists(
        st.tuples(st.integers(0, 7), st.sampled_from(list(Outcome)), st.floats(0, 5)),
        max_size=120,
    ),
)
def test_never_more_than_max_ejection_percent_ejected(
    size: int, events: list[tuple[int, Outcome, float]]
) -> None:
    det = OutlierDetector()
    now = 0.0
    limit = math.ceil(size * 0.5)
    for index, outcome, step in events:
        now += step
        det.record(f"e{index % size}", outcome, now, size)
        assert det.ejected_count(now) <= limit
        for key in (f"e{i}" for i in range(size)):
            until = det.ejected_until(key, now)
            assert until is None or now < until <= now + 30.0


def test_upstream_state_survives_table_swaps_and_retain_drops_the_rest() -> None:
    old = route([ep("a-0"), ep("a-1")], [ep("b-gw")])
    new = route([ep("a-0"), ep("a-2")], [ep("b-gw")])  # same service, a-1 replaced by a-2
    state = UpstreamState()
    for _ in range(3):
        state.record(old, old.priorities[0].endpoints[0], Outcome.HTTP_5XX, 0.0)
    state.record_probe("b-gw", False, 0.0)
    state.record_probe("b-gw", False, 0.0)
    state.begin("a-1")
    state.retain({"a-0", "a-2", "b-gw"}, services={"checkout.shop"})
    # a-0 is still ejected and b-gw still down under the new table; a-2 takes the traffic
    assert count_picks(LoadBalancer(), new, state, 200, now=0.5) == {"a-2": 200}
    assert state.in_flight == {"a-1": 1}  # in-flight requests finish on the old endpoint
    state.end("a-1")
    state.retain(set(), services=set())
    assert state.in_flight == {} and state.health.unhealthy() == frozenset()
    assert state.is_healthy("checkout.shop", "a-0", 0.5)
