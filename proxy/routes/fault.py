"""Per-route fault injection: a fixed delay and/or an abort for a share of requests."""

from __future__ import annotations

import random
from dataclasses import dataclass

from proxy.routes.table import FaultSettings


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What to inject into one request: wait ``delay_s`` first, then (if ``abort_status`` is
    set) answer that status locally with ``x-isthmus-reason: fault_injected`` instead of
    forwarding."""

    delay_s: float = 0.0
    abort_status: int | None = None


NO_FAULT = FaultDecision()


def _roll(rng: random.Random, percent: float) -> bool:
    return rng.random() * 100.0 < percent


def decide_fault(fault: FaultSettings | None, rng: random.Random) -> FaultDecision:
    """Roll the dice for one request.

    The delay and the abort are independent draws (as in Envoy): a request gets the delay with
    probability ``delay_percent`` % (only if ``delay_s > 0``) and the abort with probability
    ``abort_percent`` % (only if ``abort_status`` is set); both may apply, the delay first.
    A draw is consumed only for a fault that is configured, so routes without faults never
    touch the RNG. Returns the shared :data:`NO_FAULT` when nothing is injected.
    """
    if fault is None:
        return NO_FAULT
    delay = 0.0
    abort: int | None = None
    # ``and`` short-circuits: no draw is consumed for a fault that is not configured.
    if fault.delay_s > 0.0 and fault.delay_percent > 0.0 and _roll(rng, fault.delay_percent):
        delay = fault.delay_s
    if (
        fault.abort_status is not None
        and fault.abort_percent > 0.0
        and _roll(rng, fault.abort_percent)
    ):
        abort = fault.abort_status
    if delay == 0.0 and abort is None:
        return NO_FAULT
    return FaultDecision(delay, abort)
