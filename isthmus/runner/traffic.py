"""The built-in traffic generator of ``isthmus up``: what the apps of each cluster would send.

One flow per (source cluster, service): idempotent ``GET``s at a fixed rate through the source
cluster's outbound listener to ``http://<service>.global/``. The client never retries — every
retry is the gateways' — so :class:`FlowStats` counts what an application would have seen:
successes, failures (with the last few reasons), latency, and which cluster answered, with a
short wall-clock history so a test or the dashboard can say when traffic moved.

A flow pauses (sends nothing, counts nothing) while its source cluster is down: a killed
cluster's apps are down with it.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import trio

HISTORY = 2000
ERRORS_KEPT = 10


@dataclass
class FlowStats:
    """Counters of one flow (source cluster -> service)."""

    source: str
    service: str
    ok: int = 0
    failed: int = 0
    latency_sum_s: float = 0.0
    answered_by: Counter[str] = field(default_factory=Counter)
    #: (wall time, answering cluster or "" for a failure), newest last.
    history: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=HISTORY))
    errors: deque[str] = field(default_factory=lambda: deque(maxlen=ERRORS_KEPT))

    def record(self, at: float, latency_s: float, cluster: str | None, error: str = "") -> None:
        self.history.append((at, cluster or ""))
        if cluster is None:
            self.failed += 1
            self.errors.append(error)
            return
        self.ok += 1
        self.latency_sum_s += latency_s
        self.answered_by[cluster] += 1

    def describe(self) -> dict[str, object]:
        """JSON view (the control endpoint and the tests read it)."""
        done = self.ok or 1
        return {
            "source": self.source,
            "service": self.service,
            "ok": self.ok,
            "failed": self.failed,
            "mean_latency_ms": round(1000 * self.latency_sum_s / done, 2),
            "answered_by": dict(self.answered_by),
            "recent": [[round(t, 3), c] for t, c in list(self.history)[-200:]],
            "errors": list(self.errors),
        }


async def _one(client: httpx.AsyncClient, stats: FlowStats, url: str) -> None:
    started, wall = time.perf_counter(), time.time()
    try:
        response = await client.get(url)
    except httpx.HTTPError as err:
        stats.record(wall, 0.0, None, f"{type(err).__name__}: {err}")
        return
    latency = time.perf_counter() - started
    if response.status_code != 200:
        stats.record(wall, latency, None, f"HTTP {response.status_code}: {response.text[:200]}")
        return
    try:
        cluster = str(response.json()["cluster"])
    except (ValueError, KeyError) as err:
        stats.record(wall, latency, None, f"not a replica's answer: {err}")
        return
    stats.record(wall, latency, cluster)


async def run_flow(
    generator: TrafficGenerator,
    key: tuple[str, str],
    outbound_port: int,
    *,
    rate_per_s: float,
    timeout_s: float,
    source_up: Callable[[], bool],
) -> None:
    """Send forever (until cancelled) at ``rate_per_s``; owns its HTTP client. Requests are
    sequential: a slow answer delays the next one rather than piling up."""
    if rate_per_s <= 0:
        return
    period = 1.0 / rate_per_s
    url = f"http://{key[1]}.global/"
    proxy = f"http://127.0.0.1:{outbound_port}"
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    async with httpx.AsyncClient(proxy=proxy, timeout=timeout_s, limits=limits) as client:
        next_at = trio.current_time()
        while True:
            next_at += period
            if source_up():  # the stats object is looked up each time: reset() swaps it
                await _one(client, generator.flow(*key), url)
            await trio.sleep_until(max(next_at, trio.current_time()))


@dataclass
class TrafficGenerator:
    """Every flow of the federation (``flows[(source, service)]``)."""

    flows: dict[tuple[str, str], FlowStats] = field(default_factory=dict)

    def flow(self, source: str, service: str) -> FlowStats:
        return self.flows.setdefault((source, service), FlowStats(source, service))

    def describe(self) -> list[dict[str, object]]:
        return [stats.describe() for _, stats in sorted(self.flows.items())]

    def reset(self) -> None:
        """Start counting afresh (``isthmus up`` does at "ready": the requests sent while the
        first snapshots were on their way are start-up, not service)."""
        for key, stats in self.flows.items():
            self.flows[key] = FlowStats(stats.source, stats.service)

    def totals(self) -> tuple[int, int]:
        """(successes, failures) over every flow."""
        return (
            sum(s.ok for s in self.flows.values()),
            sum(s.failed for s in self.flows.values()),
        )
