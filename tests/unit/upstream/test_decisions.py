"""Pool decisions: exact connection snapshots in, exact choices out."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proxy.upstream.decisions import (
    OPEN_NEW,
    WAIT,
    Acquire,
    ConnectionView,
    ConnState,
    PoolLimits,
    choose_connection,
    connections_to_close,
    keep_after_response,
)

PEER = PoolLimits(multiplexed=True, max_connections=2, max_idle=2, idle_timeout_s=None)
HTTP1 = PoolLimits(multiplexed=False, max_connections=3, max_idle=1, idle_timeout_s=60.0)

R, C, D = ConnState.READY, ConnState.CONNECTING, ConnState.DRAINING


def view(conn_id: int, state: ConnState, used: int, cap: int = 100, idle: float | None = None):
    return ConnectionView(conn_id, state, used, cap, idle)


def test_empty_pool_opens_a_connection() -> None:
    assert choose_connection([], PEER) == OPEN_NEW
    assert choose_connection([], HTTP1) == OPEN_NEW


def test_multiplexed_requests_share_a_connecting_connection_instead_of_dialling_again() -> None:
    assert choose_connection([view(1, C, 5)], PEER) == Acquire(conn_id=1)


def test_multiplexed_picks_least_loaded_ready_connection() -> None:
    conns = [view(1, R, 7), view(2, R, 3), view(3, C, 0)]
    assert choose_connection(conns, PEER) == Acquire(conn_id=2)


def test_second_peer_connection_opens_only_when_first_is_saturated() -> None:
    assert choose_connection([view(1, R, 99)], PEER) == Acquire(conn_id=1)
    assert choose_connection([view(1, R, 100)], PEER) == OPEN_NEW


def test_at_max_connections_and_saturated_the_request_waits() -> None:
    assert choose_connection([view(1, R, 100), view(2, R, 100)], PEER) == WAIT
    assert WAIT.wait and not OPEN_NEW.wait


def test_goaway_draining_connection_is_never_chosen_and_does_not_count_against_max() -> None:
    conns = [view(1, D, 0), view(2, D, 4)]
    assert choose_connection(conns, PEER) == OPEN_NEW


def test_http1_reuses_most_recently_idle_connection() -> None:
    conns = [view(1, R, 0, 1, idle=10.0), view(2, R, 0, 1, idle=30.0), view(3, R, 1, 1)]
    assert choose_connection(conns, HTTP1) == Acquire(conn_id=2)


def test_http1_busy_pool_opens_until_max_total_then_waits() -> None:
    assert choose_connection([view(1, R, 1, 1), view(2, C, 1, 1)], HTTP1) == OPEN_NEW
    full = [view(1, R, 1, 1), view(2, R, 1, 1), view(3, C, 1, 1)]
    assert choose_connection(full, HTTP1) == WAIT


def test_close_idle_beyond_timeout_and_drained_connections() -> None:
    conns = [
        view(1, R, 0, 1, idle=0.0),  # idle 60 s: expired
        view(2, R, 0, 1, idle=30.0),  # idle 30 s: kept
        view(3, D, 0, 1),  # drained
        view(4, D, 2, 1),  # still has streams
        view(5, R, 1, 1),  # busy
    ]
    assert connections_to_close(conns, HTTP1, now=60.0) == (1, 3)


def test_close_longest_idle_beyond_max_idle() -> None:
    conns = [view(1, R, 0, 1, idle=5.0), view(2, R, 0, 1, idle=9.0), view(3, R, 0, 1, idle=7.0)]
    assert connections_to_close(conns, HTTP1, now=10.0) == (1, 3)


def test_peer_connections_without_idle_timeout_are_kept() -> None:
    conns = [view(1, R, 0, idle=0.0), view(2, R, 0, idle=1.0)]
    assert connections_to_close(conns, PEER, now=1e9) == ()


def test_keep_after_response() -> None:
    assert keep_after_response(reusable=True, draining=False)
    assert not keep_after_response(reusable=False, draining=False)
    assert not keep_after_response(reusable=True, draining=True)


views = st.builds(
    ConnectionView,
    conn_id=st.integers(0, 20),
    state=st.sampled_from(list(ConnState)),
    streams_in_use=st.integers(0, 5),
    max_streams=st.integers(1, 5),
    idle_since=st.none() | st.floats(0, 100),
)


@given(st.lists(views, max_size=8, unique_by=lambda v: v.conn_id), st.booleans())
def test_choice_is_always_usable_or_within_limits(conns: list[ConnectionView], mux: bool) -> None:
    limits = PoolLimits(multiplexed=mux, max_connections=3, max_idle=1, idle_timeout_s=10.0)
    decision = choose_connection(conns, limits)
    if decision.conn_id is not None:
        chosen = next(c for c in conns if c.conn_id == decision.conn_id)
        assert chosen.state in (R, C) and chosen.streams_in_use < chosen.max_streams
    elif decision.open_new:
        assert sum(c.state in (R, C) for c in conns) < 3
    closed = connections_to_close(conns, limits, now=50.0)
    assert all(next(c for c in conns if c.conn_id == i).streams_in_use == 0 for i in closed)
