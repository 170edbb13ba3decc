"""hypercorn HTTP/2 patches: a crash fix, and response chunks sent without a task hop.

**The crash:** DATA arriving on a stream the app already answered.

hypercorn 0.18's ``H2Protocol._handle_events`` indexes ``self.streams[stream_id]`` for every
``DataReceived`` event. When the app responds before the client finished sending the body (our
413 for oversized bodies, a 401 before reading it), the stream is gone and the lookup raises
``KeyError``; under the trio worker that exception escapes the connection task and takes the
whole server down (pgjones/hypercorn#329; fixes proposed in #312/#334, not released). We drop
such events after acknowledging their bytes for connection-level flow control, as those
proposed fixes do. Remove it once a hypercorn release carries the fix.

**The send path:** see :func:`install_h2_direct_send`.
"""

from __future__ import annotations

from typing import Any

import h2.events
import h2.exceptions
from hypercorn.protocol.events import Body
from hypercorn.protocol.events import Event as StreamEvent
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


_DIRECT = "_isthmus_direct_send"


def install_h2_direct_send() -> None:
    """Idempotently make a response body chunk go to the connection from the app's own task
    when nothing of its stream waits to be sent (process-wide).

    hypercorn 0.18 queues every chunk in a per-stream buffer and wakes the connection's send
    task, which walks its priority tree, copies the chunk out and frames it: one more scheduler
    step per message. A snapshot stream's writer sends one message per version or answer, so
    with 1,000 streams a health flip cost 2,000 such steps on a saturated event loop. When the
    stream's buffer is empty and its flow-control window (and the connection's) takes the
    whole chunk, the chunk is framed and flushed at once, in order: nothing of the stream is
    queued before it, and the send task frames what it pops without a checkpoint in between.
    Otherwise (a full window, a closing stream) hypercorn's own path runs, unchanged."""
    if getattr(H2Protocol, _DIRECT, False):
        return
    original = H2Protocol.stream_send

    async def stream_send(self: Any, event: StreamEvent) -> None:
        if type(event) is Body and event.data and not self.closed and _frame_now(self, event):
            await self._flush()
            return
        await original(self, event)

    H2Protocol.stream_send = stream_send  # type: ignore[method-assign]
    setattr(H2Protocol, _DIRECT, True)


def _frame_now(protocol: Any, event: Body) -> bool:
    """Frame ``event.data`` on the connection now if allowed (see install_h2_direct_send)."""
    buffer = protocol.stream_buffers.get(event.stream_id)
    if buffer is None or buffer.buffer or buffer._complete:
        return False
    connection = protocol.connection
    data = event.data
    start = 0
    try:
        if connection.local_flow_control_window(event.stream_id) < len(data):
            return False
        size = connection.max_outbound_frame_size
        for start in range(0, len(data), size):
            connection.send_data(event.stream_id, data[start : start + size])
    except h2.exceptions.ProtocolError:  # closed meanwhile: hypercorn's way handles it
        if start:  # cannot happen (the window was checked); never send a chunk twice
            raise
        return False
    return True
