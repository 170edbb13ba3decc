"""The request/response shapes the engine hands the upstream pools, and the pool settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

Headers = list[tuple[bytes, bytes]]


@dataclass(slots=True)
class UpstreamRequest:
    """One request to forward.

    ``headers`` are already sanitized by the engine (lowercase names, no hop-by-hop or pseudo
    headers); the pools add the framing each protocol needs (``host`` for HTTP/1.1, pseudo
    headers for HTTP/2). ``body`` is pulled only as fast as the upstream accepts it (HTTP/2
    window, TCP send buffer); ``None`` means no body. The pools never close ``body``: its owner
    (the engine) does.
    """

    method: bytes
    scheme: bytes
    authority: bytes
    path: bytes
    headers: Headers
    body: AsyncIterator[bytes] | None = None


@dataclass(slots=True)
class UpstreamResponse:
    """A response whose headers arrived; the body streams.

    Iterating ``body`` acknowledges flow-control credit upstream as each chunk is taken, so a
    slow consumer slows the upstream (end-to-end backpressure). When the body ends normally the
    stream (and, for HTTP/1.1, the connection) is released automatically; ``trailers`` is filled
    then. Body iteration raises :class:`proxy.errors.UpstreamStreamBroken` if the stream breaks
    mid-body. The caller must ``await aclose()`` (idempotent) when it stops early: that resets
    the HTTP/2 stream or discards the HTTP/1.1 connection.
    """

    status: int
    headers: Headers
    body: AsyncIterator[bytes]
    closer: Callable[[], Awaitable[None]] = field(repr=False)
    trailers: Headers = field(default_factory=list)

    async def aclose(self) -> None:
        """Release the stream/connection; resets it when the body was not fully read."""
        await self.closer()


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """Limits and timeouts of the upstream pools (seconds, bytes).

    ``peer_connections``: long-lived multiplexed mTLS connections per peer gateway (a second
    one opens only when the first is saturated or draining). ``h2c_connections``: the same
    for h2c backends. ``http1_max_total`` / ``http1_max_idle``: HTTP/1.1 keep-alive pool per
    backend (``http1_max_idle`` at least the usual concurrency, else every burst closes
    connections the next burst must reopen). Idle connections close after
    ``idle_timeout_s`` (peers after ``peer_idle_timeout_s``, ``None`` = keep them: probes use
    them every second). ``stream_window`` / ``connection_window``: what we let an upstream
    send before our consumer reads (bounds memory per stream and per connection). HTTP/2
    connections PING every ``ping_interval_s`` (``None``: never) and are replaced when no ACK
    arrives within ``ping_timeout_s`` (a peer that vanished without closing TCP).
    """

    peer_connections: int = 2
    h2c_connections: int = 2
    http1_max_total: int = 256
    http1_max_idle: int = 128
    idle_timeout_s: float = 60.0
    peer_idle_timeout_s: float | None = None
    connect_timeout_s: float = 5.0
    acquire_timeout_s: float = 5.0
    probe_timeout_s: float = 1.0
    probe_authority: bytes = b"isthmus-gateway"
    stream_window: int = 1 << 20
    connection_window: int = 16 << 20
    read_size: int = 1 << 16
    ping_interval_s: float | None = 5.0
    ping_timeout_s: float = 2.0
    reap_interval_s: float = 1.0
