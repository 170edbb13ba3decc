"""One connection of an endpoint's pool, as the pool tracks it, and the pool's limits by
endpoint kind (see :class:`proxy.upstream.endpoint_pool.EndpointPool`)."""

from __future__ import annotations

import trio

from proxy.errors import UpstreamError
from proxy.routes.table import Endpoint
from proxy.upstream.decisions import ConnState, PoolLimits
from proxy.upstream.h1conn import H1Connection
from proxy.upstream.h2conn import H2ClientConnection
from proxy.upstream.models import PoolSettings


class Slot:
    """One connection of the pool, from the decision to open it until it is closed.

    ``reserved``: requests that picked this connection but have not started a stream yet.
    ``parked``: an idle HTTP/1.1 connection waiting in the pool's idle stack.
    """

    __slots__ = (
        "conn",
        "conn_id",
        "error",
        "idle_since",
        "parked",
        "parked_batch",
        "probe_fd",
        "ready",
        "reserved",
        "state",
    )

    def __init__(self, conn_id: int) -> None:
        self.conn_id = conn_id
        self.state = ConnState.CONNECTING
        self.reserved = 0
        self.idle_since: float | None = None
        self.ready = trio.Event()
        self.error: UpstreamError | None = None
        self.conn: H2ClientConnection | H1Connection | None = None
        self.parked = False
        self.parked_batch = -1  # the scheduler batch it was last parked in (IdleProbe)
        self.probe_fd = -1  # its socket's descriptor in the pool's IdleProbe (-1: not in it)


def limits_for(endpoint: Endpoint, settings: PoolSettings) -> PoolLimits:
    """The connection limits of a pool to ``endpoint`` (peer, h2c or HTTP/1.1)."""
    if endpoint.kind == "peer":
        return PoolLimits(
            True, settings.peer_connections, settings.peer_connections, settings.peer_idle_timeout_s
        )
    if endpoint.kind == "h2c":
        return PoolLimits(
            True, settings.h2c_connections, settings.h2c_connections, settings.idle_timeout_s
        )
    return PoolLimits(
        False, settings.http1_max_total, settings.http1_max_idle, settings.idle_timeout_s
    )
