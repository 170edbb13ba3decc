"""Leases: silent clusters go unreachable after 3 intervals; a bad link is not a dead cluster."""

from __future__ import annotations

from federation.model import PeerProbe
from federation.service.leases import (
    LeaseInput,
    assess_reachability,
    lease_state,
)


def test_lease_states_over_time() -> None:
    assert lease_state(None, now=100.0, interval_s=1.0) == "pending"
    assert lease_state(100.0, now=100.0, interval_s=1.0) == "healthy"
    assert lease_state(100.0, now=103.0, interval_s=1.0) == "healthy"
    assert lease_state(100.0, now=103.01, interval_s=1.0) == "unreachable"
    assert lease_state(100.0, now=110.0, interval_s=5.0, missed_intervals=3) == "healthy"


def test_silent_cluster_is_down_for_everyone() -> None:
    reach = assess_reachability(
        {"a": LeaseInput(100.0), "b": LeaseInput(90.0), "c": LeaseInput(None)},
        now=100.5,
        interval_s=1.0,
    )
    assert reach.states == {"a": "healthy", "b": "unreachable", "c": "pending"}
    assert not reach.can_reach("a", "b")
    assert not reach.can_reach("a", "c")
    assert reach.can_reach("b", "a")


def test_link_down_only_affects_the_reporting_peer() -> None:
    reach = assess_reachability(
        {
            "a": LeaseInput(100.0, (PeerProbe(cluster="b", ok=False),)),
            "b": LeaseInput(100.0),
            "c": LeaseInput(100.0, (PeerProbe(cluster="b", ok=True, latency_ms=3.0),)),
        },
        now=100.0,
        interval_s=1.0,
    )
    assert reach.is_up("b")
    assert not reach.can_reach("a", "b")
    assert reach.can_reach("c", "b")
    assert reach.unreachable_from("b") == ("a",)


def test_probes_from_a_silent_cluster_are_not_believed() -> None:
    reach = assess_reachability(
        {"a": LeaseInput(50.0, (PeerProbe(cluster="b", ok=False),)), "b": LeaseInput(100.0)},
        now=100.0,
        interval_s=1.0,
    )
    assert reach.links_down == frozenset()
