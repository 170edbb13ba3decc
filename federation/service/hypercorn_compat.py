"""Work around a hypercorn HTTP/2 crash: DATA arriving on a stream the app already answered.

hypercorn 0.18's ``H2Protocol._handle_events`` indexes ``self.streams[stream_id]`` for every
``DataReceived`` event. When the app responds before the client finished sending the body (our
413 for oversized bodies, a 401 before reading it), the stream is gone and the lookup raises
``KeyError``; under the trio worker that exception escapes the connection task and takes the
whole server down (pgjones/hypercorn#329; fixes proposed in #312/#334, not released). We drop
such events after acknowledging their bytes for connection-level flow control, as those
proposed fixes do. Remove this module once a hypercorn release carries the fix.
"""

from __future__ import annotations

from typing import Any

import h2.events
from hypercorn.protocol.h2 import H2Protocol

_PATCHED = "_isthmus_closed_stream_fix"


def install_h2_closed_stream_fix() -> None:
    """Idempotently wrap ``H2Protocol._handle_events`` (process-wide)."""
    if getattr(H2Protocol, _PATCHED, False):
        return
    original = H2Protocol._handle_events

    async def handle_events(self: Any, events: list[h2.events.Event]) -> None:
        # One event at a time: handling one event may close the stream a later DATA is for.
        for event in events:
            if isinstance(event, h2.events.DataReceived) and event.stream_id not in self.streams:
                self.connection.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id
                )
                continue
            await original(self, [event])

    H2Protocol._handle_events = handle_events  # type: ignore[method-assign]
    setattr(H2Protocol, _PATCHED, True)
