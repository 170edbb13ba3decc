"""When an SVID is renewed: at half-life, pulled earlier by at most the jitter."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.trust import renewal_due

T0 = datetime(2026, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_without_jitter_renewal_is_at_half_life() -> None:
    assert renewal_due(T0, T0 + HOUR, T0, random.Random(1), jitter=0.0) == T0 + HOUR / 2


def test_jitter_pulls_renewal_earlier_by_at_most_jitter_of_the_lifetime() -> None:
    rng = random.Random(7)
    dues = {renewal_due(T0, T0 + HOUR, T0, rng, jitter=0.1) for _ in range(200)}
    assert min(dues) >= T0 + timedelta(minutes=24)
    assert max(dues) <= T0 + timedelta(minutes=30)
    assert len(dues) > 100  # spread, not one instant for every gateway


def test_same_seed_same_answer() -> None:
    one = renewal_due(T0, T0 + HOUR, T0, random.Random(42))
    two = renewal_due(T0, T0 + HOUR, T0, random.Random(42))
    assert one == two


def test_overdue_credential_is_renewed_now() -> None:
    now = T0 + timedelta(minutes=50)
    assert renewal_due(T0, T0 + HOUR, now, random.Random(1)) == now


def test_jitter_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="jitter must be in"):
        renewal_due(T0, T0 + HOUR, T0, random.Random(1), jitter=0.5)


@given(
    st.integers(min_value=1, max_value=10**7),
    st.floats(min_value=0.0, max_value=0.49),
    st.integers(min_value=0, max_value=2**32),
)
def test_due_is_within_the_window(lifetime_s: int, jitter: float, seed: int) -> None:
    not_after = T0 + timedelta(seconds=lifetime_s)
    due = renewal_due(T0, not_after, T0, random.Random(seed), jitter)
    half = T0 + (not_after - T0) / 2
    assert half - (not_after - T0) * jitter - timedelta(microseconds=1) <= due <= half
