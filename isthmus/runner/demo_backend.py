"""A tiny HTTP/1.1 demo backend (trio + h11) that answers with the name of its cluster.

Each response is JSON: ``{"cluster", "method", "path", "host", "body_bytes", "isthmus_headers",
"traceparent"}`` — enough for a person running ``isthmus up`` to see which cluster answered and
for tests to see what reached the backend (for example that a spoofed ``x-isthmus-*`` header
did not). Keep-alive; request bodies are read and counted, never stored.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import h11
import trio

log = logging.getLogger(__name__)
MAX_REQUEST_HEAD = 64 * 1024


@dataclass
class BackendStats:
    """Requests answered so far (tests assert on where traffic went)."""

    requests: int = 0
    paths: list[str] = field(default_factory=list)


def _answer(cluster: str, request: h11.Request, body_bytes: int) -> bytes:
    headers = {k.decode().lower(): v.decode("latin-1") for k, v in request.headers}
    doc = {
        "cluster": cluster,
        "method": request.method.decode(),
        "path": request.target.decode("latin-1"),
        "host": headers.get("host", ""),
        "body_bytes": body_bytes,
        "isthmus_headers": {k: v for k, v in headers.items() if k.startswith("x-isthmus-")},
        "traceparent": headers.get("traceparent"),
    }
    return json.dumps(doc).encode() + b"\n"


async def _next_event(conn: h11.Connection, stream: trio.SocketStream) -> h11.Event | type:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        data = await stream.receive_some(65536)
        conn.receive_data(data)


async def _serve_connection(cluster: str, stats: BackendStats, stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_HEAD)
    async with stream:
        while True:
            event = await _next_event(conn, stream)
            if not isinstance(event, h11.Request):
                return
            body = 0
            while isinstance(nxt := await _next_event(conn, stream), h11.Data):
                body += len(nxt.data)
            payload = _answer(cluster, event, body)
            stats.requests += 1
            stats.paths.append(event.target.decode("latin-1"))
            response = h11.Response(
                status_code=200,
                headers=[
                    ("content-type", "application/json"),
                    ("content-length", str(len(payload))),
                    ("x-served-by", cluster),
                ],
            )
            await stream.send_all(conn.send(response) + conn.send(h11.Data(data=payload)))
            await stream.send_all(conn.send(h11.EndOfMessage()))
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()


async def _guarded(cluster: str, stats: BackendStats, stream: trio.SocketStream) -> None:
    try:
        await _serve_connection(cluster, stats, stream)
    except (h11.RemoteProtocolError, trio.BrokenResourceError, trio.ClosedResourceError) as err:
        log.debug("demo backend %s: connection ended: %s", cluster, err)


async def serve_demo_backend(
    cluster: str,
    host: str,
    port: int,
    *,
    stats: BackendStats | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve forever on ``host:port`` (0 = any free port); ``task_status.started`` gets the
    bound port. Cancel the caller's scope to stop: the listening socket closes at once (the
    port is free again when this returns)."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]
    own = stats if stats is not None else BackendStats()

    async def handler(stream: trio.SocketStream) -> None:
        await _guarded(cluster, own, stream)

    try:
        async with trio.open_nursery() as nursery:
            task_status.started(bound)
            await trio.serve_listeners(handler, listeners, handler_nursery=nursery)
    finally:  # serve_listeners does not close them: release the port now, not at GC
        for listener in listeners:
            listener.socket.close()
