"""hypercorn patches: an HTTP/2 crash fix, chunks sent without a task hop, a cheaper read loop.

**The crash:** DATA arriving on a stream the app already answered.

hypercorn 0.18's ``H2Protocol._handle_events`` indexes ``self.streams[stream_id]`` for every
``DataReceived`` event. When the app responds before the client finished sending the body (our
413 for oversized bodies, a 401 before reading it), the stream is gone and the lookup raises
``KeyError``; under the trio worker that exception escapes the connection task and takes the
whole server down (pgjones/hypercorn#329; fixes proposed in #312/#334, not released). We drop
such events after acknowledging their bytes for connection-level flow control, as those
proposed fixes do. Remove it once a hypercorn release carries the fix.

**The send path and the read loop:** see :func:`install_h2_direct_send` and
:func:`install_read_loop_without_timeout`.
"""

from __future__ import annotations

from typing import Any

import h2.events
import h2.exceptions
import trio
from hypercorn.events import Closed, RawData
from hypercorn.protocol.events import Body
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer

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


_READ_LOOP = "_isthmus_read_without_timeout"


def install_read_loop_without_timeout() -> None:
    """Idempotently make hypercorn's connection read loop skip its per-read ``fail_after``
    when no ``read_timeout`` is configured (process-wide; the federation configures none).

    hypercorn 0.18 wraps every ``receive_some`` in ``trio.fail_after(read_timeout or inf)``:
    a cancel scope entered and left per read, i.e. per report of every connected gateway —
    5 % of the server's CPU with 1,000 gateways reporting (py-spy). An infinite deadline never
    fires, so the loop without it behaves the same. With a ``read_timeout`` set, hypercorn's
    own loop runs, unchanged."""
    if getattr(TCPServer, _READ_LOOP, False):
        return
    original = TCPServer._read_data

    async def read_data(self: Any) -> None:
        if self.config.read_timeout:
            await original(self)
            return
        while True:
            try:
                data = await self.stream.receive_some(MAX_RECV)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                break
            await self.protocol.handle(RawData(bytes(data)))
            if data == b"":
                break
        await self.protocol.handle(Closed())

    TCPServer._read_data = read_data  # type: ignore[method-assign]
    setattr(TCPServer, _READ_LOOP, True)
