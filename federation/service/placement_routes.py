"""Planned traffic as the snapshot builder consumes it (pure).

:class:`PlannedTraffic` holds, per source cluster and declared service, the engine's priority
levels (integer weights summing to 100) and each planned cluster's health fraction for that
service. The builder filters the levels against what it sees right now — a cluster that is not
usable from the source (lease expired, link down, no healthy endpoint for the service, the
source not allowed) loses its weight, the rest of its level is re-weighted to 100, empty levels
are dropped — so a snapshot never routes to a cluster that does not run the service, even in
the instant between a lease expiring and the next plan.

The engine's per-level ``load`` is not carried: the gateway recomputes it from the weights and
``cluster_health`` (Envoy overprovisioning), on top of its own live view of its peers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from federation.model.routing import PriorityLevel
from federation.placement import largest_remainder


@dataclass(frozen=True)
class PlannedRoute:
    """One service's traffic from one source cluster, as planned."""

    levels: tuple[Mapping[str, int], ...]
    health: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PlannedTraffic:
    """Planned routes by service, then source cluster; ``generation`` rises with every plan."""

    generation: int = 0
    routes: Mapping[str, Mapping[str, PlannedRoute]] = field(default_factory=dict)
    services: frozenset[str] = frozenset()

    def declares(self, service: str) -> bool:
        """Whether ``service`` is placed by the engine (else the simple rule routes it)."""
        return service in self.services

    def levels(
        self, source: str, service: str, usable: Callable[[str], bool]
    ) -> tuple[tuple[PriorityLevel, ...], dict[str, float]] | None:
        """Filtered levels and ``cluster_health`` for ``source`` -> ``service``; ``None`` when
        nothing planned is usable (the caller falls back to the simple rule)."""
        planned = self.routes.get(service, {}).get(source)
        if planned is None:
            return None
        levels: list[PriorityLevel] = []
        health: dict[str, float] = {}
        for weights in planned.levels:
            kept = [
                (name, float(w)) for name, w in sorted(weights.items()) if w > 0 and usable(name)
            ]
            if not kept:
                continue
            levels.append(PriorityLevel(weights=largest_remainder(kept)))
            for name, _ in kept:
                fraction = round(planned.health.get(name, 1.0), 3)
                if fraction < 1.0:
                    health[name] = fraction
        if not levels:
            return None
        return tuple(levels), health
