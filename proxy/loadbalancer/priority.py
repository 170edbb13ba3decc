"""Envoy's priority-level load split and panic thresholds, as one pure function."""

from __future__ import annotations

from collections.abc import Sequence

DEFAULT_OVERPROVISIONING = 1.4
DEFAULT_PANIC_THRESHOLD = 50.0


def priority_load(
    levels: Sequence[tuple[float, float]],
    overprovisioning: float = DEFAULT_OVERPROVISIONING,
    panic_threshold: float = DEFAULT_PANIC_THRESHOLD,
) -> tuple[list[float], list[bool]]:
    """Split 100 % of traffic across priority levels; say which levels are in panic.

    ``levels`` are ``(healthy, total)`` per level, most preferred first: endpoint counts, or
    weights (``Σ weight × health`` of live endpoints over ``Σ weight``). Returns
    ``(loads, panic)``: ``loads[i]`` is level *i*'s percentage of requests (they sum to 100,
    or are all 0 when nothing can be routed); ``panic[i]`` says that level's requests must go
    to *all* its endpoints, ignoring health.

    Semantics (Envoy's, with exact floats instead of Envoy's integer percentages):

    * a level's health is ``min(100, overprovisioning × 100 × healthy / total)``; a level with
      ``total == 0`` has health 0 and never receives load;
    * the normalized total health is ``min(100, Σ health)``; levels take load in order, each
      ``min(remaining, health × 100 / normalized total)``: with ``overprovisioning = 1.4`` a level
      keeps all its traffic while at least 1/1.4 ≈ 71.4 % of its endpoints are healthy, and
      spills the rest to the next level (2 of 5 healthy → 56 % stays, 44 % moves on); when the
      total is short of 100, loads are scaled up proportionally so they still sum to 100;
    * panic: only when the normalized total health is below 100 (there is not enough healthy
      capacity across all levels), a level whose *raw* healthy share ``100 × healthy / total``
      is below ``panic_threshold`` is in panic;
    * if no endpoint is healthy anywhere, the first non-empty level gets 100 % in panic
      (Envoy's behaviour: try everything rather than fail everything); with
      ``panic_threshold <= 0`` panic is disabled and all loads are 0 instead.
    """
    count = len(levels)
    loads = [0.0] * count
    panic = [False] * count
    health = [
        min(100.0, overprovisioning * 100.0 * healthy / total) if total > 0 else 0.0
        for healthy, total in levels
    ]
    normalized = min(100.0, sum(health))
    if normalized <= 0.0:
        if panic_threshold > 0.0:
            for index, (_, total) in enumerate(levels):
                if total > 0:
                    loads[index] = 100.0
                    panic[index] = True
                    break
        return loads, panic
    remaining = 100.0
    for index, level_health in enumerate(health):
        share = min(remaining, level_health * 100.0 / normalized)
        loads[index] = share
        remaining -= share
    if normalized < 100.0 and panic_threshold > 0.0:
        for index, (healthy, total) in enumerate(levels):
            panic[index] = total > 0 and 100.0 * healthy / total < panic_threshold
    return loads, panic
