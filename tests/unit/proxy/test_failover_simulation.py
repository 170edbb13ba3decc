"""The decision cores together, driven like the engine drives them, over simulated time.

A route prefers peer cluster b, then c. b dies at t=5 and comes back at t=11.5. The simulation
sends 50 GET requests a second, retries as the retry policy says and probes every peer once a
second: no request fails, traffic leaves b within 2 s and returns after its first good probe.
"""

from __future__ import annotations

import random
from collections import Counter

from proxy.clusters import UpstreamState
from proxy.loadbalancer import LoadBalancer
from proxy.outlier import Outcome
from proxy.retry import FailureKind, outcome_for_failure, retry_decision
from tests.unit.proxy.builders import ep, route

ROUTE = route([ep("b-gw", kind="peer")], [ep("c-gw", kind="peer")])


class Simulation:
    def __init__(self) -> None:
        self.state = UpstreamState()
        self.lb = LoadBalancer()
        self.rng = random.Random(11)
        self.dead: set[str] = set()
        self.served: Counter[tuple[int, str]] = Counter()  # (second, endpoint) -> requests
        self.failed = 0
        self.retries = 0

    def request(self, now: float) -> None:
        budget = self.state.budget(ROUTE.service)
        budget.begin_request()
        tried: list[str] = []
        avoid: str | None = None
        attempt = 1
        try:
            while attempt <= 10:
                pick = self.lb.pick(
                    ROUTE, self.state, now, self.rng, exclude=frozenset(tried), avoid_cluster=avoid
                )
                if pick.endpoint is None:
                    self.failed += 1
                    return
                endpoint = pick.endpoint
                if endpoint.key not in self.dead:
                    self.state.record(ROUTE, endpoint, Outcome.SUCCESS, now)
                    self.served[(int(now), endpoint.key)] += 1
                    return
                outcome = outcome_for_failure(FailureKind.CONNECT_FAILURE)
                assert outcome is not None
                self.state.record(ROUTE, endpoint, outcome, now)
                decision = retry_decision(
                    FailureKind.CONNECT_FAILURE,
                    method=b"GET",
                    body_started=False,
                    attempt=attempt,
                    settings=ROUTE.retry,
                    budget=budget,
                )
                if not decision.retry:
                    self.failed += 1
                    return
                self.retries += 1
                tried.append(endpoint.key)
                avoid = endpoint.locality.cluster
                attempt += 1
        finally:
            budget.end_request()

    def run(self, seconds: int, rate: int) -> None:
        for tick in range(seconds * rate):
            now = tick / rate
            if now == 5.0:
                self.dead.add("b-gw")
            if now == 11.5:
                self.dead.discard("b-gw")
            if tick % rate == 0 and now > 0:
                for key in ("b-gw", "c-gw"):
                    self.state.record_probe(key, key not in self.dead, now)
            self.request(now)


def test_failover_and_failback_without_a_failed_request() -> None:
    sim = Simulation()
    sim.run(seconds=20, rate=50)
    assert sim.failed == 0
    per_second = {s: (sim.served[(s, "b-gw")], sim.served[(s, "c-gw")]) for s in range(20)}
    assert all(per_second[s] == (50, 0) for s in range(5))  # healthy: all on b
    assert all(per_second[s] == (0, 50) for s in range(5, 12))  # b dead: all on c
    assert all(per_second[s] == (50, 0) for s in range(12, 20))  # failback at first good probe
    # three connect failures (each retried on c) eject b; the probes keep it out until t=12
    assert sim.retries == 3
