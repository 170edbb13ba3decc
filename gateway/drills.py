"""Gateway-side chaos drills: partition from peer clusters, slow down what the gateway serves.

One :class:`GatewayDrills` per gateway (``RunningGateway.drills``), changed only by whoever runs
the drill (``isthmus up``'s control endpoint) and read by three hooks in :mod:`gateway.run`:

* inbound admission (:meth:`GatewayDrills.check_inbound`): a handshake from a partitioned
  peer's gateway is refused like an unknown peer (:class:`~gateway.errors.PeerRejected`);
* outbound verification (:meth:`GatewayDrills.outbound_verifier`): a connection to a
  partitioned peer fails right after the handshake, which the proxy reports as a
  ``ConnectFailure`` — so requests retry elsewhere and probes mark the peer down, and the
  federation hears a link-down from this cluster (not a cluster-down);
* inbound service (:class:`DelayedInbound`): every request the inbound listener serves, except
  peer probes, waits ``inbound_delay_s`` first.

Pooled connections to a newly partitioned peer are closed by :meth:`GatewayDrills.partition`'s
caller through ``on_change`` (``gateway.run`` passes a pool trim), so nothing established
survives the partition.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import trio

from gateway.errors import PeerRejected
from proxy.engine import ForwardingEngine
from proxy.listeners import Exchange
from proxy.routes import Endpoint

_GATEWAY_PATH = "/isthmus/gateway/"


def cluster_of(spiffe_id: str) -> str:
    """The cluster of a gateway SPIFFE ID (``spiffe://td/isthmus/gateway/<cluster>``), else ''."""
    _, _, path = spiffe_id.partition("://")[2].partition("/")
    path = "/" + path
    return path[len(_GATEWAY_PATH) :] if path.startswith(_GATEWAY_PATH) else ""


@dataclass
class GatewayDrills:
    """The drills in force on one gateway. Plain state; no I/O, no clock."""

    partitioned: set[str] = field(default_factory=set)
    inbound_delay_s: float = 0.0
    #: Called after every change (the gateway closes pooled connections to partitioned peers).
    on_change: Callable[[], None] = lambda: None

    def partition(self, cluster: str) -> None:
        """Refuse ``cluster``'s gateway both ways from now on."""
        self.partitioned.add(cluster)
        self.on_change()

    def slow(self, delay_s: float) -> None:
        """Delay every inbound request (not probes) by ``delay_s`` (0 = no delay)."""
        if delay_s < 0:
            raise ValueError(f"delay must be >= 0 seconds, got {delay_s}")
        self.inbound_delay_s = delay_s

    def heal(self) -> None:
        """Undo every drill on this gateway."""
        self.partitioned.clear()
        self.inbound_delay_s = 0.0
        self.on_change()

    def describe(self) -> dict[str, object]:
        return {"partitioned": sorted(self.partitioned), "inbound_delay_s": self.inbound_delay_s}

    def check_inbound(self, peer_cluster: str) -> None:
        """Raise :class:`PeerRejected` (``partitioned``) for a partitioned peer's gateway."""
        if peer_cluster in self.partitioned:
            raise PeerRejected("partitioned", f"drill: cluster {peer_cluster} is partitioned away")

    def outbound_verifier(
        self, verify: Callable[[Endpoint, ssl.SSLObject], None]
    ) -> Callable[[Endpoint, ssl.SSLObject], None]:
        """``verify`` preceded by the partition check (the proxy turns the raise into a
        connect failure)."""

        def checked(endpoint: Endpoint, ssl_object: ssl.SSLObject) -> None:
            peer = endpoint.locality.cluster
            if peer in self.partitioned:
                raise PeerRejected("partitioned", f"drill: cluster {peer} is partitioned away")
            verify(endpoint, ssl_object)

        return checked

    def reachable(self, endpoint: Endpoint) -> bool:
        """False for an endpoint in a partitioned cluster (pooled connections to drop)."""
        return endpoint.locality.cluster not in self.partitioned


class DelayedInbound:
    """The engine as the inbound listener sees it: :meth:`handle` waits the drill's delay first
    (peer probes excepted, so a slow cluster stays healthy, just slow)."""

    def __init__(self, engine: ForwardingEngine, drills: GatewayDrills) -> None:
        self._engine = engine
        self._drills = drills

    def handle(self, exchange: Exchange) -> Coroutine[Any, Any, None]:
        """The engine's own coroutine when no delay applies: no extra coroutine frame per
        request (created, and passed through on every resume) for a drill that is off."""
        delay = self._drills.inbound_delay_s
        if delay > 0 and exchange.authority != self._engine.probe_authority:
            return self._delayed(exchange, delay)
        return self._engine.handle(exchange)

    async def _delayed(self, exchange: Exchange, delay: float) -> None:
        await trio.sleep(delay)
        await self._engine.handle(exchange)
