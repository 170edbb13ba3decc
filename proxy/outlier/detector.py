"""Passive outlier detection: consecutive failures eject an endpoint for a while (sans-IO).

The engine reports the outcome of every attempt with :meth:`OutlierDetector.record`; the load
balancer asks :meth:`OutlierDetector.is_ejected`. Nothing here reads a clock: ``now`` is the
caller's monotonic time in seconds. Un-ejection is lazy (``now >= until`` makes the endpoint
routable again); :meth:`OutlierDetector.tick` reports the expiries as :class:`Unejected` events
for metrics and logs.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Iterable
from dataclasses import dataclass


class Outcome(enum.Enum):
    """What one attempt against an endpoint produced, as outlier detection sees it.

    ``SUCCESS``: any response that is not a 5xx (4xx are the caller's fault, not the endpoint's).
    ``HTTP_5XX``: a 500, 501 or 505-599 response.
    ``GATEWAY_ERROR``: a 502, 503 or 504 response, or a stream/connection reset mid-request.
    ``CONNECT_FAILURE``: TCP connect, TLS handshake or peer-identity check failed.
    ``TIMEOUT``: the per-try timeout fired (a locally originated failure).
    """

    SUCCESS = "success"
    HTTP_5XX = "http_5xx"
    GATEWAY_ERROR = "gateway_error"
    CONNECT_FAILURE = "connect_failure"
    TIMEOUT = "timeout"


def outcome_for_status(status: int) -> Outcome:
    """How a response status counts: 502/503/504 gateway errors, other 5xx, else success."""
    if status < 500:
        return Outcome.SUCCESS
    if status in (502, 503, 504):
        return Outcome.GATEWAY_ERROR
    return Outcome.HTTP_5XX


@dataclass(frozen=True, slots=True)
class OutlierSettings:
    """Thresholds and timings; a threshold of 0 disables that detector.

    Ejection *n* (1-based) lasts ``min(max_ejection_s, base_ejection_s * 2 ** (n - 1))``;
    each full ``decay_s`` an endpoint spends un-ejected lowers *n* by one.
    """

    consecutive_5xx: int = 3
    consecutive_gateway_errors: int = 3
    consecutive_connect_failures: int = 3
    consecutive_timeouts: int = 3
    base_ejection_s: float = 1.0
    max_ejection_s: float = 30.0
    decay_s: float = 10.0
    max_ejection_percent: float = 50.0


@dataclass(frozen=True, slots=True)
class Ejected:
    """``key`` is out of rotation until ``until`` (monotonic seconds); ``count`` is *n*."""

    key: Hashable
    until: float
    reason: str
    count: int


@dataclass(frozen=True, slots=True)
class Unejected:
    """``key`` is back in rotation (its ejection expired)."""

    key: Hashable


class _Stats:
    __slots__ = ("connect", "ejections", "five_xx", "gateway", "last_until", "timeouts")

    def __init__(self) -> None:
        self.five_xx = 0
        self.gateway = 0
        self.connect = 0
        self.timeouts = 0
        self.ejections = 0
        self.last_until = 0.0


class OutlierDetector:
    """Consecutive-failure outlier detection over one group of endpoints.

    A *group* is the set of endpoints whose ejections count against ``max_ejection_percent``
    together (the proxy uses one detector per service route). Not thread-safe; owned by the
    :class:`proxy.clusters.UpstreamState` of one gateway process.
    """

    __slots__ = ("_ejected", "_stats", "settings")

    def __init__(self, settings: OutlierSettings | None = None) -> None:
        self.settings = settings or OutlierSettings()
        self._stats: dict[Hashable, _Stats] = {}
        self._ejected: dict[Hashable, float] = {}

    def is_ejected(self, key: Hashable, now: float) -> bool:
        """True while ``key`` is ejected (``now < until``)."""
        until = self._ejected.get(key)
        return until is not None and now < until

    def ejected_until(self, key: Hashable, now: float) -> float | None:
        """The end of ``key``'s current ejection, or ``None`` when it is routable."""
        until = self._ejected.get(key)
        return until if until is not None and now < until else None

    def ejected_count(self, now: float) -> int:
        """How many endpoints are ejected at ``now`` (for the ejections gauge)."""
        return sum(1 for until in self._ejected.values() if now < until)

    def record(
        self, key: Hashable, outcome: Outcome, now: float, group_size: int
    ) -> Ejected | None:
        """Account one attempt's ``outcome``; return :class:`Ejected` if it ejected ``key``.

        ``group_size`` is the number of endpoints in the group now (for the max-ejection
        percentage). Failures reported while ``key`` is ejected (retries, panic routing) neither
        extend the ejection nor count towards the next one; a success resets every counter.
        """
        if outcome is Outcome.SUCCESS:
            self.record_success(key)
            return None
        stats = self._stats.get(key)
        if stats is None:
            stats = self._stats[key] = _Stats()
        if self.is_ejected(key, now):
            return None
        reason = self._count(stats, outcome)
        if reason is None:
            return None
        return self._eject(key, stats, reason, now, group_size)

    def record_success(self, key: Hashable) -> None:
        """:meth:`record` of ``Outcome.SUCCESS``: every consecutive-failure counter resets."""
        stats = self._stats.get(key)
        if stats is not None:
            stats.five_xx = stats.gateway = stats.connect = stats.timeouts = 0

    def _count(self, stats: _Stats, outcome: Outcome) -> str | None:
        cfg = self.settings
        if outcome is Outcome.GATEWAY_ERROR:
            stats.gateway += 1
            stats.five_xx += 1
            if 0 < cfg.consecutive_gateway_errors <= stats.gateway:
                return "consecutive_gateway_errors"
            if 0 < cfg.consecutive_5xx <= stats.five_xx:
                return "consecutive_5xx"
        elif outcome is Outcome.HTTP_5XX:
            stats.five_xx += 1
            if 0 < cfg.consecutive_5xx <= stats.five_xx:
                return "consecutive_5xx"
        elif outcome is Outcome.CONNECT_FAILURE:
            stats.connect += 1
            if 0 < cfg.consecutive_connect_failures <= stats.connect:
                return "consecutive_connect_failures"
        elif outcome is Outcome.TIMEOUT:
            stats.timeouts += 1
            if 0 < cfg.consecutive_timeouts <= stats.timeouts:
                return "consecutive_timeouts"
        return None

    def _eject(
        self, key: Hashable, stats: _Stats, reason: str, now: float, group_size: int
    ) -> Ejected | None:
        cfg = self.settings
        active = self.ejected_count(now)
        # Envoy's rule: eject only while the share already ejected is below the limit, so a
        # lone endpoint can still be ejected (and its traffic fail over) at 50 %.
        if group_size <= 0 or active * 100.0 >= cfg.max_ejection_percent * group_size:
            return None
        if stats.ejections and cfg.decay_s > 0:
            healthy_for = now - stats.last_until
            if healthy_for >= cfg.decay_s:
                stats.ejections = max(0, stats.ejections - int(healthy_for // cfg.decay_s))
        stats.ejections += 1
        duration = min(cfg.max_ejection_s, cfg.base_ejection_s * 2.0 ** (stats.ejections - 1))
        until = now + duration
        stats.last_until = until
        stats.five_xx = stats.gateway = stats.connect = stats.timeouts = 0
        self._ejected[key] = until
        return Ejected(key, until, reason, stats.ejections)

    def tick(self, now: float) -> list[Unejected]:
        """Forget expired ejections and report each one once, in ejection order."""
        expired = [key for key, until in self._ejected.items() if now >= until]
        for key in expired:
            del self._ejected[key]
        return [Unejected(key) for key in expired]

    def retain(self, keys: Iterable[Hashable]) -> None:
        """Drop all state of endpoints not in ``keys`` (they left every route)."""
        keep = set(keys)
        for table in (self._stats, self._ejected):
            for key in [key for key in table if key not in keep]:
                del table[key]
