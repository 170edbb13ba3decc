"""hypercorn patches: an HTTP/2 crash fix, chunks sent without a task hop, a cheaper read loop.

**The crash:** DATA arriving on a stream the app already answered.

hypercorn 0.18's ``H2Protocol._handle_events`` indexes ``self.streams[stream_id]`` for every
``DataReceived`` event. When the app responds before the client finished sending the body (our
413 for oversized bodies, a 401 before reading it), the stream is gone and the lookup raises
``KeyError``; under the trio worker that exception escapes the connection task and takes the
whole server down (pgjones/hypercorn#329; fixes proposed in #312/#334, not released). We drop
such events after acknowledging their bytes for connection-level flow control, as those
proposed fixes do (and handle DATA events ourselves, flushing once per batch of events).
Remove it once a hypercorn release carries the fix.

**The send path, the read loop and the request body:** see :func:`install_h2_direct_send`,
:func:`install_read_loop_without_timeout` and :func:`install_direct_body`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import trio
from hypercorn.events import Closed, RawData
from hypercorn.protocol.events import Body, EndBody, Request
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.protocol.http_stream import HTTPStream
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer

_PATCHED = "_isthmus_closed_stream_fix"
_log = logging.getLogger(__name__)


def install_h2_closed_stream_fix() -> None:
    """Idempotently wrap ``H2Protocol._handle_events`` (process-wide)."""
    if getattr(H2Protocol, _PATCHED, False):
        return
    original = H2Protocol._handle_events

    async def handle_events(self: Any, events: list[h2.events.Event]) -> None:
        # One event at a time: handling one event may close the stream a later DATA is for.
        # DATA is handled here as hypercorn does (to its stream, then acknowledged), flushed
        # once after the batch instead of after each frame.
        unflushed = False
        for event in events:
            if isinstance(event, h2.events.DataReceived):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    await stream.handle(Body(stream_id=event.stream_id, data=event.data))
                self.connection.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id
                )
                unflushed = True
                continue
            await original(self, [event])  # flushes what is pending, too
            unflushed = False
        if unflushed:
            await self._flush()

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


#: The ASGI scope extension under which :func:`install_direct_body` offers a :class:`DirectBody`.
DIRECT_BODY = "isthmus.direct_body"
_BODY = "_isthmus_direct_body"


class DirectBody:
    """A request's body chunks offered to the app as they are read (see
    :func:`install_direct_body`), in the connection's read task.

    ``consume(chunk)`` returns True when it took the chunk (it must not wait or raise), False
    to have it queued for ``receive`` as usual. It is called only while nothing of the body
    waits in that queue (``queued == 0``), so the chunks reach the app in order either way;
    ``received()`` must be called once per ``http.request`` message the app takes from
    ``receive`` (each was counted in ``queued``)."""

    __slots__ = ("consume", "queued")

    def __init__(self) -> None:
        self.consume: Callable[[bytes], bool] | None = None
        #: body messages (chunks and the end) put in the ``receive`` queue, not yet received
        self.queued = 0

    def received(self) -> None:
        self.queued -= 1


def install_direct_body() -> None:
    """Idempotently let an app take request body chunks in the connection's read task,
    without the ``receive`` queue's task switch (process-wide).

    hypercorn 0.18 puts every DATA frame's bytes in a memory channel that the app's task
    reads: one more scheduler step per up message of every snapshot stream (a report per
    gateway per second). Every HTTP request's scope now carries a :class:`DirectBody` under
    ``extensions[DIRECT_BODY]``; an app that sets its ``consume`` gets each chunk first. Apps
    that do not see no difference. A ``consume`` that raises (a bug) ends its request as if
    the client had left (``http.disconnect``), not the connection. Also: h2 formats every
    received frame for a trace log it then drops (``repr(frame)`` per frame, ~1 % of the
    federation's CPU at 1,000 gateways); with h2's default no-op logger it no longer does."""
    if getattr(HTTPStream, _BODY, False):
        return
    original = HTTPStream.handle

    async def handle(self: Any, event: StreamEvent) -> None:
        kind = type(event)
        if kind is Body or kind is EndBody:
            direct: DirectBody | None = getattr(self, _BODY, None)
            if direct is not None and not self.closed:
                if kind is Body and direct.queued == 0 and direct.consume is not None:
                    taken = _consumed(direct, bytes(event.data))  # type: ignore[attr-defined]
                    if taken is None:  # it failed: the app is told the client left
                        await self.app_put({"type": "http.disconnect"})
                    if taken is not False:
                        return
                direct.queued += 1
        await original(self, event)
        if kind is Request:
            direct = DirectBody()
            setattr(self, _BODY, direct)
            self.scope["extensions"][DIRECT_BODY] = direct  # the app has not started yet

    HTTPStream.handle = handle  # type: ignore[method-assign]
    setattr(HTTPStream, _BODY, True)
    _skip_frame_repr()


def _consumed(direct: DirectBody, chunk: bytes) -> bool | None:
    """``direct.consume(chunk)``; None if it raised (it is not offered chunks again)."""
    consume = direct.consume
    assert consume is not None
    try:
        return consume(chunk)
    except Exception:
        _log.exception("a request body consumer failed; ending its request")
        direct.consume = None
        return None


class _NoRepr:
    """``repr`` for h2.connection: a constant unless h2 really logs (its trace of every
    received frame is the only ``repr`` call in that module)."""

    def __call__(self, obj: object) -> str:
        return "<frame>"


def _skip_frame_repr() -> None:
    if type(h2.config.H2Configuration().logger) is h2.config.DummyLogger:
        h2.connection.repr = _NoRepr()  # type: ignore[attr-defined]
