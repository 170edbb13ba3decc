"""``GET /v1/ui/stream``: the dashboard document as server-sent events.

A raw ASGI endpoint so every task has an owner: one nursery per connection holds the writer and
a task that watches for the client leaving (``http.disconnect``), which cancels the writer. The
writer sends the document at once, then again after every burst of store changes (the change
feed, coalesced for :data:`DEBOUNCE_S`, at most once per :data:`MIN_INTERVAL_S`) and at least
every :data:`TICK_S` so ages and rates stay current. Each message is ``event: state`` with the
JSON document as ``data``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import trio
from starlette.requests import Request

from federation.service.errors import ServiceError
from federation.store import Change
from federation.ui.access import DashboardAccess
from federation.ui.gather import DashboardSource

TICK_S = 2.0
DEBOUNCE_S = 0.1
MIN_INTERVAL_S = 0.5

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def sse_message(document: object) -> bytes:
    """One ``event: state`` message carrying ``document`` as compact JSON."""
    return b"event: state\ndata: " + json.dumps(document, separators=(",", ":")).encode() + b"\n\n"


async def next_burst(feed: AsyncIterator[Change], tick_s: float, debounce_s: float) -> None:
    """Return after a change plus ``debounce_s`` of follow-ups, or after ``tick_s`` of quiet."""
    with trio.move_on_after(tick_s):
        await feed.__anext__()
        with trio.move_on_after(debounce_s):
            while True:
                await feed.__anext__()


class StateStream:
    """The ASGI app behind ``/v1/ui/stream`` (borrows the access checker and the source)."""

    def __init__(
        self, access: DashboardAccess, source: DashboardSource, *, tick_s: float = TICK_S
    ) -> None:
        self.access = access
        self.source = source
        self.tick_s = tick_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        try:
            self.access.require_viewer(request.cookies, request.headers.get("authorization"))
        except ServiceError as err:
            body = json.dumps({"error": {"reason": err.reason, "message": str(err)}}).encode()
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": err.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_disconnect, receive, nursery.cancel_scope)
            await self._write(send)
            nursery.cancel_scope.cancel()

    async def _watch_disconnect(self, receive: Receive, scope: trio.CancelScope) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                scope.cancel()
                return

    async def _write(self, send: Send) -> None:
        headers = [
            (b"content-type", b"text/event-stream"),
            (b"cache-control", b"no-store"),
            (b"x-accel-buffering", b"no"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        async with self.source.service.store.changes() as feed:
            while True:
                document = await self.source.state()
                await send(
                    {"type": "http.response.body", "body": sse_message(document), "more_body": True}
                )
                await trio.sleep(MIN_INTERVAL_S)
                await next_burst(feed, self.tick_s, DEBOUNCE_S)
