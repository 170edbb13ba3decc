"""Retries: which failures are retried, how often, and the budget that caps their load."""

from proxy.retry.policy import (
    IDEMPOTENT_METHODS,
    FailureKind,
    RetryBudget,
    RetryDecision,
    outcome_for_failure,
    retry_decision,
)

__all__ = [
    "IDEMPOTENT_METHODS",
    "FailureKind",
    "RetryBudget",
    "RetryDecision",
    "outcome_for_failure",
    "retry_decision",
]
