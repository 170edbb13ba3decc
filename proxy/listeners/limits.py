"""Per-listener limits and the drain signal shared by a listener and its connections."""

from __future__ import annotations

from dataclasses import dataclass

import trio


@dataclass(frozen=True, slots=True)
class ListenerLimits:
    """Limits of one listener (seconds, bytes). Defaults are documented in
    ``docs/gateway-limits.md``.

    ``max_connections``: connections beyond it are closed right after accept (existing ones
    are untouched). ``max_concurrent_streams``: HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS.
    ``max_header_list_size``: request head bytes (HTTP/1.1 -> 431, HTTP/2 -> GOAWAY).
    ``header_read_timeout_s``: a request head (and the TLS handshake, HTTP/2 preface) must
    arrive within it (slowloris). ``idle_timeout_s``: a connection with no request in flight
    closes after it. ``request_timeout_s``: a whole exchange is bounded by it (504 if no
    response started, else reset). ``drain_timeout_s``: how long in-flight requests may
    finish after a drain starts before their connections are closed.
    ``tunnel_idle_timeout_s``: a CONNECT tunnel that moved no byte in either direction for it
    is closed (like Envoy's ``tcp_proxy`` ``idle_timeout``).
    """

    max_connections: int = 10_000
    max_concurrent_streams: int = 256
    max_header_list_size: int = 64 * 1024
    header_read_timeout_s: float = 10.0
    idle_timeout_s: float = 300.0
    request_timeout_s: float = 300.0
    drain_timeout_s: float = 30.0
    tunnel_idle_timeout_s: float = 3600.0
    stream_window: int = 1 << 20
    connection_window: int = 4 << 20
    read_size: int = 1 << 16


class DrainSignal:
    """Set once to ask every connection of a listener to finish and close.

    HTTP/2 connections send GOAWAY (in-flight streams finish), HTTP/1.1 connections answer
    their current request with ``connection: close``; idle connections close at once.
    """

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = trio.Event()

    def drain(self) -> None:
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()
