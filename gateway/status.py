"""What the gateway knows about itself right now: the admin API and the probes read it.

One :class:`GatewayStatus` per gateway (per worker process). It is mutated only by
:func:`gateway.run.serve_gateway`'s tasks, on the trio thread; readers get consistent values
because the table is swapped as one reference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from proxy.routes import RoutingTable


@dataclass
class GatewayStatus:
    """Readiness inputs and the active table. ``ready`` is what ``/readyz`` answers."""

    cluster: str
    table: RoutingTable | None = None
    listeners_up: bool = False
    draining: bool = False
    last_reload_error: str | None = None
    reloads: int = 0
    peer_health: dict[str, bool] = field(default_factory=dict)
    probe_rounds: int = 0
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: The federation link's state for ``/config`` (federated gateways only).
    federation: Callable[[], dict[str, object]] | None = None

    def readiness(self) -> tuple[bool, str]:
        """``(ready, reason)``: ready when listeners are up, a table is loaded and the gateway is
        not draining; the reason names what is missing."""
        if self.draining:
            return False, "draining"
        if not self.listeners_up:
            return False, "listeners not up"
        if self.table is None:
            return False, "no routing table loaded"
        return True, "ready"
