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
#: Issue 4: "1,000 gateways at 1 report/s must fit one federation replica".
REPORTS_TARGET_PER_S = 1000.0


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
class Flip:
    """One health change of the target cluster and how the watchers followed it."""

    to_healthy: bool
    converged: int
    received: Spread
    acked: Spread
    server_cpu_pct: float
    bench_cpu_pct: float
    server_cpu_s: float


@dataclass
class SizeResult:
    watchers: int
    store: str
    joined: int = 0
    join_s: float | None = None
    join_timeline: list[tuple[float, int]] = field(default_factory=list)
    settle_s: float | None = None
    snapshot_bytes: int | None = None
    bundles_bytes: int | None = None
    flips: list[Flip] = field(default_factory=list)
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


def p99_of(flip: Flip, watchers: int) -> float:
    """A flip's p99 to every ACK; infinite if not every watcher ACKed in time."""
    if flip.converged < watchers or flip.acked.p99 is None:
        return math.inf
    return flip.acked.p99


def summary_p99(result: SizeResult) -> float | None:
    """The median over flips of each flip's p99 (``None``: no flip measured or incomplete)."""
    values = sorted(p99_of(flip, result.watchers) for flip in result.flips)
    if not values:
        return None
    median = values[(len(values) - 1) // 2]
    return None if math.isinf(median) else median


def _flip_lines(index: int, flip: Flip, watchers: int) -> list[str]:
    what = "endpoint back up" if flip.to_healthy else "endpoint down"
    acked, received = flip.acked, flip.received
    return [
        f"  flip {index} ({what}): every ACK p50 {_ms(acked.p50)} p99 {_ms(acked.p99)} max "
        f"{_ms(acked.max)} [{flip.converged}/{watchers}]; received p50 {_ms(received.p50)} "
        f"p99 {_ms(received.p99)}",
        f"      CPU meanwhile: server {flip.server_cpu_pct:.0f}%, benchmark "
        f"{flip.bench_cpu_pct:.0f}% of one core; server CPU time {flip.server_cpu_s:.2f} s",
    ]


def convergence_lines(result: SizeResult) -> list[str]:
    if not result.flips:
        return ["  convergence: not measured (setup did not finish; see notes)"]
    lines = []
    for index, flip in enumerate(result.flips, 1):
        lines.extend(_flip_lines(index, flip, result.watchers))
    target = target_for(result.watchers)
    p99 = summary_p99(result)
    verdict = "PASS" if p99 is not None and p99 <= target else "MISS"
    best = min(p99_of(flip, result.watchers) for flip in result.flips)
    lines.append(
        f"  change -> every watcher ACKed, p99 (median of {len(result.flips)} flips): {_ms(p99)}"
        f" (best flip {_ms(None if math.isinf(best) else best)})"
    )
    lines.append(
        f"  target p99 <= {_ms(target)}: {verdict} (p99/target {_ratio(p99, target)}); "
        f"p99 / Istio debounce 100 ms = {_ratio(p99, ISTIO_DEBOUNCE_S)}; "
        f"p99 / Karmada SLO 2 s = {_ratio(p99, KARMADA_SLO_S)}"
    )
    if p99 is None:
        lines.append("  (in most flips not every watcher ACKed within the time bound)")
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


def reports_verdict(result: SizeResult) -> str:
    rate = result.saturation
    if rate is None:
        return "  reports target (1,000/s on one replica): not measured"
    per_cpu = rate.per_server_cpu_s
    verdict = "PASS" if rate.achieved_per_s >= REPORTS_TARGET_PER_S else "MISS"
    cpu_text = "" if per_cpu is None else f"; {per_cpu / REPORTS_TARGET_PER_S:.2f}x per CPU-second"
    return (
        f"  reports target (1,000/s on one replica): {verdict} "
        f"({rate.achieved_per_s / REPORTS_TARGET_PER_S:.2f}x achieved{cpu_text})"
    )


def render(result: SizeResult) -> list[str]:
    head = f"{result.watchers} watchers ({result.store})"
    join = "-" if result.join_s is None else f"{result.join_s:.1f} s"
    settle = "-" if result.settle_s is None else f"{result.settle_s:.1f} s"
    size = "-" if result.snapshot_bytes is None else f"{result.snapshot_bytes / 1024:.0f} KiB"
    if result.bundles_bytes:
        size += f" routing per push (+ {result.bundles_bytes / 1024:.0f} KiB bundles on open)"
    lines = [
        head,
        f"  setup: {result.joined}/{result.watchers} joined in {join}; all routed and quiet after "
        f"{settle}; snapshot size {size}",
        *convergence_lines(result),
        *([result.build.line()] if result.build else []),
        rate_line("reports, every gateway at 1/s", result.steady),
        rate_line(
            f"reports, saturation ({result.saturation_workers} senders, 1 answer per 10)",
            result.saturation,
        ),
        reports_verdict(result),
    ]
    errors = {k: v for k, v in result.errors.items() if v}
    if errors:
        lines.append("  errors: " + ", ".join(f"{k} {v}" for k, v in errors.items()))
    lines.extend(f"  note: {note}" for note in result.notes)
    return lines
