"""Fault injection percentages."""

from __future__ import annotations

import random

from proxy.routes import NO_FAULT, FaultDecision, FaultSettings, decide_fault

N = 20_000


def test_no_fault_configured_consumes_no_randomness() -> None:
    rng = random.Random(1)
    before = rng.getstate()
    assert decide_fault(None, rng) is NO_FAULT
    assert decide_fault(FaultSettings(), rng) is NO_FAULT
    assert decide_fault(FaultSettings(delay_s=1.0, delay_percent=0.0), rng) is NO_FAULT
    assert rng.getstate() == before


def test_abort_and_delay_hit_their_percentages_independently() -> None:
    fault = FaultSettings(delay_s=0.25, delay_percent=50, abort_status=503, abort_percent=10)
    rng = random.Random(3)
    decisions = [decide_fault(fault, rng) for _ in range(N)]
    delayed = sum(1 for d in decisions if d.delay_s == 0.25)
    aborted = sum(1 for d in decisions if d.abort_status == 503)
    both = sum(1 for d in decisions if d.delay_s and d.abort_status)
    assert abs(delayed / N - 0.50) < 0.015
    assert abs(aborted / N - 0.10) < 0.01
    assert abs(both / N - 0.05) < 0.01
    assert all(d.delay_s in (0.0, 0.25) and d.abort_status in (None, 503) for d in decisions)


def test_hundred_percent_always_and_zero_never() -> None:
    rng = random.Random(4)
    always = FaultSettings(abort_status=418, abort_percent=100)
    assert {decide_fault(always, rng) for _ in range(500)} == {FaultDecision(0.0, 418)}
    never = FaultSettings(abort_status=418, abort_percent=0)
    assert {decide_fault(never, rng) for _ in range(500)} == {NO_FAULT}
