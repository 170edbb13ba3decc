"""Per-service load of the requests this gateway serves from its own backends (pure).

The observer feeds every finished request whose destination is this cluster's own backends
(:meth:`ServiceLoadTracker.record`); the federation report reads, once per interval,
:meth:`ServiceLoadTracker.sample`: the request rate and error rate since the previous sample
and the latency EWMA. No clock is read here: ``sample`` takes ``now`` (monotonic seconds).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Weight of the newest request in the latency EWMA (about the last 10 requests matter).
EWMA_ALPHA = 0.1


@dataclass
class _Counters:
    requests: int = 0
    errors: int = 0
    latency_ewma_ms: float = 0.0


@dataclass(frozen=True)
class LoadSample:
    """One service's load over the last sample period."""

    request_rate: float
    error_rate: float
    latency_ewma_ms: float


class ServiceLoadTracker:
    """Counters per service name; owned by one gateway process, used on the trio thread."""

    def __init__(self, *, alpha: float = EWMA_ALPHA) -> None:
        self._alpha = alpha
        self._now: dict[str, _Counters] = {}
        self._latency: dict[str, float] = {}
        self._last_sample_at: float | None = None

    def record(self, service: str, status: int, duration_s: float) -> None:
        """Count one finished request (5xx and aborted exchanges count as errors)."""
        counters = self._now.get(service)
        if counters is None:
            counters = self._now[service] = _Counters()
        counters.requests += 1
        if status == 0 or status >= 500:
            counters.errors += 1
        ms = duration_s * 1000.0
        previous = self._latency.get(service)
        self._latency[service] = (
            ms if previous is None else previous + self._alpha * (ms - previous)
        )

    def seen(self) -> list[str]:
        """Every key recorded since start (sorted)."""
        return sorted(self._latency)

    def sample(self, services: list[str], now: float) -> dict[str, LoadSample]:
        """Load of each of ``services`` since the previous call (rates 0 on the first call),
        then start a new period."""
        elapsed = None if self._last_sample_at is None else max(now - self._last_sample_at, 1e-3)
        self._last_sample_at = now
        result: dict[str, LoadSample] = {}
        for name in services:
            counters = self._now.pop(name, _Counters())
            rate = 0.0 if elapsed is None else counters.requests / elapsed
            errors = counters.errors / counters.requests if counters.requests else 0.0
            result[name] = LoadSample(rate, errors, self._latency.get(name, 0.0))
        self._now.clear()
        return result
