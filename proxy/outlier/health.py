"""Active health of peer gateways, from periodic ``/readyz`` probes (sans-IO).

The gateway probes every peer gateway over its mTLS connection once a second (driven by the
trio side) and reports each result here. A peer is unhealthy after ``unhealthy_threshold``
consecutive failed probes and healthy again after ``healthy_threshold`` consecutive successes.
With the defaults (2 failures, 1 s interval, probe timeout ≤ 1 s) a dead cluster stops
receiving new traffic within about 2 s, without any user traffic. A single failed probe does
*not* take a peer out: one lost probe on a busy link must not move all traffic.
Keys never probed are healthy (a new peer is usable at once; passive outlier detection covers
it until the first probe).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HealthCheckSettings:
    """Probe thresholds (consecutive results) and the probe interval the driver should use."""

    interval_s: float = 1.0
    timeout_s: float = 1.0
    unhealthy_threshold: int = 2
    healthy_threshold: int = 1


@dataclass(frozen=True, slots=True)
class HealthChanged:
    """``key`` turned healthy (``healthy=True``) or unhealthy at time ``at``."""

    key: Hashable
    healthy: bool
    at: float


class _ProbeRun:
    __slots__ = ("failures", "successes")

    def __init__(self) -> None:
        self.failures = 0
        self.successes = 0


class HealthChecker:
    """Consecutive-probe health state per endpoint key."""

    __slots__ = ("_runs", "_unhealthy", "settings")

    def __init__(self, settings: HealthCheckSettings | None = None) -> None:
        self.settings = settings or HealthCheckSettings()
        self._runs: dict[Hashable, _ProbeRun] = {}
        self._unhealthy: set[Hashable] = set()

    def is_healthy(self, key: Hashable) -> bool:
        """False only after the unhealthy threshold was reached and not yet recovered."""
        return key not in self._unhealthy

    def record_probe(self, key: Hashable, ok: bool, now: float) -> HealthChanged | None:
        """Account one probe result; return :class:`HealthChanged` when the state flips."""
        run = self._runs.get(key)
        if run is None:
            run = self._runs[key] = _ProbeRun()
        cfg = self.settings
        if ok:
            run.failures = 0
            run.successes += 1
            if key in self._unhealthy and run.successes >= cfg.healthy_threshold:
                self._unhealthy.discard(key)
                return HealthChanged(key, True, now)
            return None
        run.successes = 0
        run.failures += 1
        if key not in self._unhealthy and run.failures >= cfg.unhealthy_threshold:
            self._unhealthy.add(key)
            return HealthChanged(key, False, now)
        return None

    def unhealthy(self) -> frozenset[Hashable]:
        """The keys currently marked unhealthy."""
        return frozenset(self._unhealthy)

    def retain(self, keys: Iterable[Hashable]) -> None:
        """Forget endpoints that are no longer configured."""
        keep = set(keys)
        for key in [key for key in self._runs if key not in keep]:
            del self._runs[key]
        self._unhealthy &= keep
