"""The long-lived, mutable upstream state of one gateway process (sans-IO).

Routing tables are immutable and swapped whole; this state is keyed by endpoint key (and
service name) so it survives a swap for endpoints that did not change. Health of an endpoint
for a service = not ejected by that service's outlier detector and not marked unhealthy by
active probes (probes are per endpoint, so a dead peer gateway leaves every service at once).
"""

from __future__ import annotations

from collections.abc import Iterable

from proxy.outlier.detector import Ejected, Outcome, OutlierDetector, OutlierSettings, Unejected
from proxy.outlier.health import HealthChanged, HealthChecker, HealthCheckSettings
from proxy.retry.policy import RetryBudget
from proxy.routes.table import Endpoint, PriorityGroup, Route


def route_size(route: Route) -> int:
    """Number of endpoints of a route, across all its priority levels."""
    return sum(len(group.endpoints) for group in route.priorities)


class UpstreamState:
    """In-flight counts, outlier detectors (one per service), active health and retry budgets.

    ``generation`` increases whenever routability may have changed other than by time
    (an ejection, a health flip, :meth:`retain`); the load balancer caches per-route plans on
    it. Owned by the gateway's engine; single-threaded (one per worker process).
    """

    __slots__ = ("_budgets", "_outliers", "generation", "health", "in_flight", "outlier_settings")

    def __init__(
        self,
        outlier_settings: OutlierSettings | None = None,
        health_settings: HealthCheckSettings | None = None,
    ) -> None:
        self.outlier_settings = outlier_settings or OutlierSettings()
        self.health = HealthChecker(health_settings)
        self.in_flight: dict[str, int] = {}
        self.generation = 0
        self._outliers: dict[str, OutlierDetector] = {}
        self._budgets: dict[str, RetryBudget] = {}

    # -- in-flight requests (least-request balancing) --------------------------------------
    def begin(self, key: str) -> None:
        """An attempt to endpoint ``key`` started; pair with exactly one :meth:`end`."""
        self.in_flight[key] = self.in_flight.get(key, 0) + 1

    def end(self, key: str) -> None:
        """The attempt to ``key`` finished (any outcome, including cancellation)."""
        count = self.in_flight.get(key, 0)
        if count <= 1:
            self.in_flight.pop(key, None)
        else:
            self.in_flight[key] = count - 1

    # -- passive outlier detection ---------------------------------------------------------
    def outliers(self, service: str) -> OutlierDetector:
        """The outlier detector of one service (created on first use)."""
        detector = self._outliers.get(service)
        if detector is None:
            detector = self._outliers[service] = OutlierDetector(self.outlier_settings)
        return detector

    def record(
        self, route: Route, endpoint: Endpoint, outcome: Outcome, now: float
    ) -> Ejected | None:
        """Report the outcome of one attempt; returns the ejection it caused, if any.

        The max-ejection percentage counts against all endpoints of ``route``.
        """
        event = self.outliers(route.service).record(endpoint.key, outcome, now, route_size(route))
        if event is not None:
            self.generation += 1
        return event

    def record_success(self, service: str, key: str) -> None:
        """:meth:`record` for a successful attempt (resets the endpoint's failure counts),
        without the clock or the route: the hot path of every relayed response."""
        detector = self._outliers.get(service)
        if detector is not None:
            detector.record_success(key)

    # -- active health -----------------------------------------------------------------------
    def record_probe(self, key: str, ok: bool, now: float) -> HealthChanged | None:
        """Report one ``/readyz`` probe of a peer gateway endpoint."""
        event = self.health.record_probe(key, ok, now)
        if event is not None:
            self.generation += 1
        return event

    # -- queries -----------------------------------------------------------------------------
    def is_healthy(self, service: str, key: str, now: float) -> bool:
        """Routable for ``service``: probes pass and not ejected by that service."""
        if not self.health.is_healthy(key):
            return False
        detector = self._outliers.get(service)
        return detector is None or not detector.is_ejected(key, now)

    def healthy_counts(self, group: PriorityGroup, now: float, *, service: str) -> tuple[int, int]:
        """(healthy, total) endpoints of one priority level for ``service``."""
        healthy = sum(1 for ep in group.endpoints if self.is_healthy(service, ep.key, now))
        return healthy, len(group.endpoints)

    def budget(self, service: str) -> RetryBudget:
        """The retry budget of one service (created on first use)."""
        budget = self._budgets.get(service)
        if budget is None:
            budget = self._budgets[service] = RetryBudget()
        return budget

    def tick(self, now: float) -> list[tuple[str, Unejected]]:
        """Expired ejections since the last tick, as ``(service, event)`` (call ~every second)."""
        return [
            (service, event)
            for service, detector in self._outliers.items()
            for event in detector.tick(now)
        ]

    def retain(self, keys: Iterable[str], services: Iterable[str] | None = None) -> None:
        """Drop state of endpoints (and services) no longer in the routing table.

        In-flight counts of endpoints still serving requests are kept until they end.
        Retry budgets of dropped services are kept while they have requests in flight.
        """
        keep = set(keys)
        self.health.retain(keep)
        for detector in self._outliers.values():
            detector.retain(keep)
        if services is not None:
            live = set(services)
            for name in [name for name in self._outliers if name not in live]:
                del self._outliers[name]
            for name, budget in list(self._budgets.items()):
                if name not in live and budget.active_requests == 0:
                    del self._budgets[name]
        self.generation += 1
