"""Pure connection-pool decisions: which connection a request uses, when to open, what to close.

No I/O, no clock: the trio pool builds :class:`ConnectionView` snapshots, asks, and acts.
A connection that is still connecting is offered like a ready one (its capacity is the
protocol's assumed default until the peer's SETTINGS arrive), so concurrent requests queue on
it instead of each dialling its own connection.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass


class ConnState(enum.Enum):
    CONNECTING = "connecting"
    READY = "ready"
    DRAINING = "draining"  # GOAWAY received or pool retired: no new streams
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class ConnectionView:
    """What the pool knows about one connection at decision time.

    ``max_streams``: the peer's SETTINGS_MAX_CONCURRENT_STREAMS (1 for HTTP/1.1).
    ``idle_since``: when ``streams_in_use`` last dropped to 0 (``None`` while busy).
    """

    conn_id: int
    state: ConnState
    streams_in_use: int
    max_streams: int
    idle_since: float | None = None


@dataclass(frozen=True, slots=True)
class PoolLimits:
    """``max_connections`` counts connecting and ready ones (draining ones do not: a GOAWAY
    must never block a replacement). ``max_idle``: idle connections kept (HTTP/1.1).
    ``idle_timeout_s``: ``None`` keeps idle connections forever."""

    multiplexed: bool
    max_connections: int
    max_idle: int
    idle_timeout_s: float | None


@dataclass(frozen=True, slots=True)
class Acquire:
    """Decision for one request: use ``conn_id``, or open a new connection, or wait.

    Exactly one of ``conn_id is not None``, ``open_new``, ``wait`` holds.
    """

    conn_id: int | None = None
    open_new: bool = False

    @property
    def wait(self) -> bool:
        return self.conn_id is None and not self.open_new


OPEN_NEW = Acquire(open_new=True)
WAIT = Acquire()


def _has_capacity(view: ConnectionView) -> bool:
    return (
        view.state in (ConnState.READY, ConnState.CONNECTING)
        and view.streams_in_use < view.max_streams
    )


def choose_connection(conns: Sequence[ConnectionView], limits: PoolLimits) -> Acquire:
    """Pick the connection for one new stream.

    Multiplexed: the least-loaded usable connection (ready before connecting, then lowest id),
    so streams spread over the long-lived connections. HTTP/1.1: the most recently idle ready
    connection (LIFO keeps the others idle so they can expire). Otherwise open a new one if
    under ``max_connections``, else wait for a release.
    """
    usable = [c for c in conns if _has_capacity(c)]
    if usable:
        if limits.multiplexed:
            best = min(
                usable,
                key=lambda c: (c.state is not ConnState.READY, c.streams_in_use, c.conn_id),
            )
        else:
            best = max(usable, key=_lifo_key)
        return Acquire(conn_id=best.conn_id)
    live = sum(1 for c in conns if c.state in (ConnState.READY, ConnState.CONNECTING))
    return OPEN_NEW if live < limits.max_connections else WAIT


def _lifo_key(view: ConnectionView) -> tuple[bool, float, int]:
    idle = view.idle_since if view.idle_since is not None else float("-inf")
    return (view.state is ConnState.READY, idle, view.conn_id)


def connections_to_close(
    conns: Sequence[ConnectionView], limits: PoolLimits, now: float
) -> tuple[int, ...]:
    """Connections the pool should close now, in id order.

    - draining connections with no stream left;
    - idle (ready, no streams) connections idle for at least ``idle_timeout_s``;
    - the longest-idle ready connections beyond ``max_idle``.
    """
    close: set[int] = set()
    for c in conns:
        if c.state is ConnState.DRAINING and c.streams_in_use == 0:
            close.add(c.conn_id)
    idle = [
        c
        for c in conns
        if c.state is ConnState.READY and c.streams_in_use == 0 and c.idle_since is not None
    ]
    if limits.idle_timeout_s is not None:
        for c in idle:
            assert c.idle_since is not None
            if now - c.idle_since >= limits.idle_timeout_s:
                close.add(c.conn_id)
    remaining = sorted(
        (c for c in idle if c.conn_id not in close),
        key=lambda c: (c.idle_since, c.conn_id),
    )
    excess = len(remaining) - limits.max_idle
    for c in remaining[: max(excess, 0)]:
        close.add(c.conn_id)
    return tuple(sorted(close))


def keep_after_response(*, reusable: bool, draining: bool) -> bool:
    """HTTP/1.1: return the connection to the pool after a response, or discard it.

    ``reusable`` is false after any error, ``connection: close`` from either side, or a body
    not read to the end; a draining (retired) pool keeps nothing.
    """
    return reusable and not draining
