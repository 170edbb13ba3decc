"""Retry decisions and the retry budget (sans-IO).

Retries happen only on failures where the engine knows what the upstream saw
(:class:`FailureKind`); the route's :class:`~proxy.routes.RetrySettings` bound how many, and a
:class:`RetryBudget` caps the extra load retries may add (Envoy's retry budget).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from proxy.outlier.detector import Outcome
from proxy.routes.table import RetrySettings

IDEMPOTENT_METHODS: frozenset[bytes] = frozenset(
    {b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"}
)


class FailureKind(enum.Enum):
    """A failed attempt the engine may retry.

    ``CONNECT_FAILURE``: no connection (TCP, TLS or identity check failed): nothing was sent.
    ``GOAWAY``: the upstream refused the stream (GOAWAY with a lower last-stream-id, or
    REFUSED_STREAM): HTTP/2 guarantees it was not processed.
    ``RESET_BEFORE_HEADERS``: the stream or connection broke before response headers.
    ``PEER_503``: a peer *gateway* answered 503 with ``x-isthmus-reason`` (it had no healthy
    destination); a 503 relayed from a backend is an ordinary response and is not retried.
    ``PER_TRY_TIMEOUT``: no response headers within the per-try timeout.
    """

    CONNECT_FAILURE = "connect_failure"
    RESET_BEFORE_HEADERS = "reset_before_headers"
    PEER_503 = "peer_503"
    GOAWAY = "goaway"
    PER_TRY_TIMEOUT = "per_try_timeout"


_OUTCOMES = {
    FailureKind.CONNECT_FAILURE: Outcome.CONNECT_FAILURE,
    FailureKind.RESET_BEFORE_HEADERS: Outcome.GATEWAY_ERROR,
    FailureKind.PEER_503: Outcome.GATEWAY_ERROR,
    FailureKind.PER_TRY_TIMEOUT: Outcome.TIMEOUT,
}


def outcome_for_failure(failure: FailureKind) -> Outcome | None:
    """What a failed attempt means for outlier detection; ``None`` for ``GOAWAY`` (a peer
    draining gracefully is not failing: its connection pool handles it)."""
    return _OUTCOMES.get(failure)


# Failures after which the upstream provably did not process the request.
_UNPROCESSED = frozenset({FailureKind.CONNECT_FAILURE, FailureKind.GOAWAY})


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """``retry`` or not, and why (a stable token for logs and metrics labels)."""

    retry: bool
    reason: str


RETRY = RetryDecision(True, "retry")
NO_ATTEMPTS_LEFT = RetryDecision(False, "attempts_exhausted")
NOT_REPLAYABLE = RetryDecision(False, "body_not_replayable")
NON_IDEMPOTENT = RetryDecision(False, "non_idempotent")
BUDGET_EXHAUSTED = RetryDecision(False, "budget_exhausted")


class RetryBudget:
    """Envoy's retry budget for one service: concurrent retries are capped at
    ``max(min_retry_concurrency, budget_percent / 100 × active requests)``.

    The engine calls :meth:`begin_request` / :meth:`end_request` around every client request
    (whatever its number of attempts) and :meth:`begin_retry` / :meth:`end_retry` around every
    retry attempt (attempt 2 and later) while it is in flight. Pure counters; never raises.
    """

    __slots__ = ("active_requests", "active_retries")

    def __init__(self) -> None:
        self.active_requests = 0
        self.active_retries = 0

    def begin_request(self) -> None:
        self.active_requests += 1

    def end_request(self) -> None:
        self.active_requests = max(0, self.active_requests - 1)

    def begin_retry(self) -> None:
        self.active_retries += 1

    def end_retry(self) -> None:
        self.active_retries = max(0, self.active_retries - 1)

    def limit(self, settings: RetrySettings) -> float:
        """How many retries may be in flight at once right now."""
        return max(
            float(settings.min_retry_concurrency),
            settings.budget_percent / 100.0 * self.active_requests,
        )

    def allows_retry(self, settings: RetrySettings) -> bool:
        """True when one more concurrent retry stays within the budget."""
        return self.active_retries < self.limit(settings)


def retry_decision(
    failure: FailureKind,
    *,
    method: bytes,
    body_started: bool,
    attempt: int,
    settings: RetrySettings,
    budget: RetryBudget,
    body_replayable: bool = True,
) -> RetryDecision:
    """Whether the engine should make another attempt after ``failure``.

    ``attempt`` is the number of the attempt that just failed, counting the first as 1; the
    route allows ``settings.attempts`` in total. ``body_started`` is True once any request
    body byte went upstream, or, for a request without a body, once its headers were sent
    (the upstream may then have acted on it); ``body_replayable`` is False when the engine no
    longer holds every body byte it sent (it keeps only a bounded prefix), so the request
    cannot be sent again.
    Rules, in order: attempts left; body replayable; non-idempotent methods whose body started
    are retried only after failures that prove the upstream did not process them
    (``CONNECT_FAILURE``, ``GOAWAY``) or when ``settings.retry_non_idempotent``; finally the
    budget. The decision does not take a budget slot: call ``budget.begin_retry()`` when the
    retry starts. Pure; never raises.
    """
    if attempt >= settings.attempts:
        return NO_ATTEMPTS_LEFT
    if body_started and not body_replayable:
        return NOT_REPLAYABLE
    if (
        body_started
        and failure not in _UNPROCESSED
        and not settings.retry_non_idempotent
        and method.upper() not in IDEMPOTENT_METHODS
    ):
        return NON_IDEMPOTENT
    if not budget.allows_retry(settings):
        return BUDGET_EXHAUSTED
    return RETRY
