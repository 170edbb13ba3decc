"""Per-stream state of an HTTP/2 client stream, fed by the connection's reader task."""

from __future__ import annotations

from collections import deque

import trio

from proxy.errors import UpstreamError
from proxy.upstream.models import Headers

# What ``readable`` and ``window`` start as: an Event already set, which nobody waits on.
# Whoever waits installs a fresh Event first (``H2ClientConnection``), so the reader's
# ``set()`` before that is a no-op; two Events per stream cost ~0.6 µs, and a stream whose
# response body comes with its headers waits for neither.
_NOBODY_WAITS = trio.Event()
_NOBODY_WAITS.set()


class H2Stream:
    """State of one client stream, fed by the reader task. ``headers_ready`` is waited on
    as it is; ``readable`` and ``window`` must be replaced by a fresh Event before a wait."""

    __slots__ = (
        "ended",
        "error",
        "headers",
        "headers_ready",
        "inbox",
        "local_ended",
        "pump_scope",
        "readable",
        "released",
        "status",
        "stream_id",
        "timed_out",
        "trailers",
        "window",
    )

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id
        self.headers_ready = trio.Event()
        self.readable = _NOBODY_WAITS
        self.window = _NOBODY_WAITS
        self.status = 0
        self.headers: Headers = []
        self.trailers: Headers = []
        self.inbox: deque[tuple[bytes, int]] = deque()
        self.ended = False
        self.local_ended = False
        self.error: UpstreamError | None = None
        self.released = False
        self.pump_scope: trio.CancelScope | None = None
        self.timed_out = False  # no response headers by the deadline given to the connection

    def wake(self) -> None:
        self.readable.set()
        self.headers_ready.set()
        self.window.set()
