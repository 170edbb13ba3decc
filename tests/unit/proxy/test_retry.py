"""Retry decisions and the retry budget."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.retry import FailureKind, RetryBudget, retry_decision
from proxy.routes import RetrySettings

DEFAULT = RetrySettings()


def decide(failure: FailureKind = FailureKind.RESET_BEFORE_HEADERS, **kw: object) -> str:
    args: dict[str, object] = {
        "method": b"GET",
        "body_started": True,
        "attempt": 1,
        "settings": DEFAULT,
        "budget": RetryBudget(),
    }
    args.update(kw)
    return retry_decision(failure, **args).reason  # type: ignore[arg-type]


@pytest.mark.parametrize("failure", list(FailureKind))
def test_idempotent_requests_are_retried_on_every_retriable_failure(failure: FailureKind) -> None:
    assert decide(failure) == "retry"


def test_attempts_count_the_first_try() -> None:
    assert decide(attempt=2) == "retry"
    assert decide(attempt=3) == "attempts_exhausted"
    assert decide(attempt=1, settings=RetrySettings(attempts=1)) == "attempts_exhausted"


@pytest.mark.parametrize(
    "failure", [FailureKind.RESET_BEFORE_HEADERS, FailureKind.PEER_503, FailureKind.PER_TRY_TIMEOUT]
)
def test_non_idempotent_with_body_sent_is_not_retried_after_maybe_processed(
    failure: FailureKind,
) -> None:
    assert decide(failure, method=b"POST") == "non_idempotent"
    assert decide(failure, method=b"PATCH") == "non_idempotent"
    assert decide(failure, method=b"POST", body_started=False) == "retry"
    allowed = RetrySettings(retry_non_idempotent=True)
    assert decide(failure, method=b"POST", settings=allowed) == "retry"


@pytest.mark.parametrize("failure", [FailureKind.CONNECT_FAILURE, FailureKind.GOAWAY])
def test_non_idempotent_is_retried_when_upstream_never_processed_it(failure: FailureKind) -> None:
    assert decide(failure, method=b"POST") == "retry"


def test_a_body_the_engine_no_longer_holds_cannot_be_replayed() -> None:
    assert decide(body_replayable=False) == "body_not_replayable"
    assert decide(body_replayable=False, body_started=False) == "retry"


def test_retry_budget_exhaustion_caps_retries_at_20_percent() -> None:
    """100 concurrent requests all failing: only 20 retries are admitted at once."""
    budget = RetryBudget()
    for _ in range(100):
        budget.begin_request()
    admitted = 0
    for _ in range(100):
        decision = retry_decision(
            FailureKind.CONNECT_FAILURE,
            method=b"GET",
            body_started=False,
            attempt=1,
            settings=DEFAULT,
            budget=budget,
        )
        if decision.retry:
            budget.begin_retry()
            admitted += 1
        else:
            assert decision.reason == "budget_exhausted"
    assert admitted == 20
    budget.end_retry()
    assert decide(budget=budget) == "retry"


def test_min_retry_concurrency_applies_at_low_load() -> None:
    budget = RetryBudget()
    budget.begin_request()
    for _ in range(3):
        assert budget.allows_retry(DEFAULT)
        budget.begin_retry()
    assert not budget.allows_retry(DEFAULT)
    assert budget.limit(DEFAULT) == 3.0
    budget.end_request()
    budget.end_request()  # never negative
    assert budget.active_requests == 0


@given(
    active=st.integers(0, 10_000),
    percent=st.floats(0, 100),
    minimum=st.integers(0, 50),
)
def test_admitted_retries_never_exceed_the_budget(
    active: int, percent: float, minimum: int
) -> None:
    settings = RetrySettings(budget_percent=percent, min_retry_concurrency=minimum)
    budget = RetryBudget()
    budget.active_requests = active
    admitted = 0
    while budget.allows_retry(settings) and admitted <= 10_001:
        budget.begin_retry()
        admitted += 1
    assert admitted <= max(minimum, percent / 100 * active) + 1
    assert admitted >= min(minimum, 10_001)
