"""Results of one convergence run and their text form (percentiles, targets, reference ratios)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from bench._convergence_probe import BuildCost

#: Issue 4's targets: p99 change-to-every-ACK on loopback.
TARGETS_S = {100: 0.100, 1000: 1.0}
#: References: Istio's push debounce (PILOT_DEBOUNCE_AFTER) and Karmada's distribution SLO.
ISTIO_DEBOUNCE_S = 0.100
KARMADA_SLO_S = 2.0


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (``None`` for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def target_for(watchers: int) -> float:
    """The issue's target for the nearest listed size (interpolated on a log scale beyond)."""
    if watchers in TARGETS_S:
        return TARGETS_S[watchers]
    return 0.100 if watchers <= 100 else min(1.0, 0.1 * watchers / 100)


@dataclass
class Spread:
    count: int
    p50: float | None
    p99: float | None
    max: float | None

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        return cls(
            len(values), percentile(values, 50), percentile(values, 99), max(values, default=None)
        )


@dataclass
class RateResult:
    offered_per_s: float
    achieved_per_s: float
    latency: Spread
    errors: int
    server_cpu_pct: float
    seconds: float
    bench_cpu_pct: float = 0.0

    @property
    def per_server_cpu_s(self) -> float | None:
        if self.server_cpu_pct <= 0:
            return None
        return self.achieved_per_s / (self.server_cpu_pct / 100)


@dataclass
class SizeResult:
    watchers: int
    store: str
    joined: int = 0
    join_s: float | None = None
    join_timeline: list[tuple[float, int]] = field(default_factory=list)
    settle_s: float | None = None
    snapshot_bytes: int | None = None
    received: Spread | None = None
    acked: Spread | None = None
    converged: int = 0
    converge_cpu_pct: tuple[float, float] | None = None  # (server, benchmark) during convergence
    converge_server_cpu_s: float | None = None
    steady: RateResult | None = None
    saturation: RateResult | None = None
    saturation_workers: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    build: BuildCost | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"


def _ratio(value: float | None, reference: float) -> str:
    return "-" if value is None else f"{value / reference:.2f}x"


def convergence_lines(result: SizeResult) -> list[str]:
    target = target_for(result.watchers)
    lines = []
    if result.acked is None or result.received is None:
        return ["  convergence: not measured (setup did not finish; see notes)"]
    acked, received = result.acked, result.received
    lines.append(
        f"  change -> every watcher ACKed: p50 {_ms(acked.p50)}  p99 {_ms(acked.p99)}  "
        f"max {_ms(acked.max)}   [{result.converged}/{result.watchers} watchers]"
    )
    lines.append(
        f"  change -> received:            p50 {_ms(received.p50)}  p99 {_ms(received.p99)}  "
        f"max {_ms(received.max)}"
    )
    complete = result.converged >= result.watchers
    p99 = acked.p99 if complete else None
    verdict = "PASS" if p99 is not None and p99 <= target else "MISS"
    lines.append(
        f"  target p99 <= {_ms(target)}: {verdict} (p99/target {_ratio(p99, target)}); "
        f"p99 / Istio debounce 100 ms = {_ratio(p99, ISTIO_DEBOUNCE_S)}; "
        f"p99 / Karmada SLO 2 s = {_ratio(p99, KARMADA_SLO_S)}"
    )
    if result.converge_cpu_pct is not None:
        server, bench = result.converge_cpu_pct
        lines.append(
            f"  CPU while converging: server {server:.0f}%, benchmark {bench:.0f}% of one core; "
            f"server CPU time change -> last ACK {result.converge_server_cpu_s or 0:.2f} s"
        )
    if not complete:
        lines.append("  (not every watcher ACKed within the time bound: p99 counts as missing)")
    return lines


def rate_line(label: str, rate: RateResult | None) -> str:
    if rate is None:
        return f"  {label}: not measured"
    per_cpu = rate.per_server_cpu_s
    cpu_text = "-" if per_cpu is None else f"{per_cpu:.0f}"
    return (
        f"  {label}: offered {rate.offered_per_s:.0f}/s, achieved {rate.achieved_per_s:.0f}/s "
        f"over {rate.seconds:.0f} s; latency p50 {_ms(rate.latency.p50)} p99 "
        f"{_ms(rate.latency.p99)}; errors {rate.errors}; server CPU {rate.server_cpu_pct:.0f}% "
        f"of one core (benchmark {rate.bench_cpu_pct:.0f}%) -> {cpu_text} reports per server "
        "CPU-second"
    )


def render(result: SizeResult) -> list[str]:
    head = f"{result.watchers} watchers ({result.store})"
    join = "-" if result.join_s is None else f"{result.join_s:.1f} s"
    settle = "-" if result.settle_s is None else f"{result.settle_s:.1f} s"
    size = "-" if result.snapshot_bytes is None else f"{result.snapshot_bytes / 1024:.0f} KiB"
    lines = [
        head,
        f"  setup: {result.joined}/{result.watchers} joined in {join}; all routed and quiet after "
        f"{settle}; snapshot size {size}",
        *convergence_lines(result),
        *([result.build.line()] if result.build else []),
        rate_line("reports, every gateway at 1/s", result.steady),
        rate_line(
            f"reports, saturation ({result.saturation_workers} in flight)", result.saturation
        ),
    ]
    errors = {k: v for k, v in result.errors.items() if v}
    if errors:
        lines.append("  errors: " + ", ".join(f"{k} {v}" for k, v in errors.items()))
    lines.extend(f"  note: {note}" for note in result.notes)
    return lines
