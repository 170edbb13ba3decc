"""Frames in, for :class:`proxy.upstream.h2conn.H2ClientConnection`: the reader task's
events turned into stream state (response heads, body chunks, ends, resets, windows, GOAWAY).

Nothing here waits: every method runs in the reader task between two reads.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from proxy.errors import GoawayReceived, RefusedStream, ResetBeforeHeaders, UpstreamStreamBroken
from proxy.protocol import h2wire
from proxy.protocol.events import (
    ClientEvent,
    ConnectionTerminated,
    DataReceived,
    EndOfStream,
    Event,
    PingAcknowledged,
    ResponseReceived,
    SettingsChanged,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from proxy.protocol.h2core import H2Core
from proxy.upstream.h2stream import H2Stream


class InboundMixin:
    """Dispatch of received events to streams; the state lives in
    :class:`proxy.upstream.h2conn.H2ClientConnection`."""

    _h2: H2Core
    _streams: dict[int, H2Stream]
    _label: str
    _key: str
    _on_change: Callable[[], None]
    _ping_acked: trio.Event
    _settings_received: bool
    draining: bool
    last_stream_id: int | None

    def _dispatch(self, event: Event | ClientEvent) -> None:  # noqa: PLR0912
        if isinstance(event, DataReceived):
            s = self._streams.get(event.stream_id)
            if s is None:
                self._h2.acknowledge(event.stream_id, event.flow_length)
            else:
                s.inbox.append((event.data, event.flow_length))
                s.readable.set()
        elif isinstance(event, ResponseReceived):
            if (s := self._streams.get(event.stream_id)) is not None:
                s.status = event.status
                s.headers = event.headers
                s.answer()
        elif isinstance(event, EndOfStream):
            if (s := self._streams.get(event.stream_id)) is not None:
                s.ended = True
                s.wake()
        elif isinstance(event, WindowUpdated):
            self._window_opened(event.stream_id)
        elif isinstance(event, StreamReset):
            if (s := self._streams.get(event.stream_id)) is not None:
                if s.ended:  # a complete response; the peer wants no more request body
                    self._forget(s)
                else:
                    self._reset_by_peer(s, event.error_code, event.reason)
        elif isinstance(event, PingAcknowledged):
            self._ping_acked.set()
        elif isinstance(event, TrailersReceived):
            if (s := self._streams.get(event.stream_id)) is not None:
                s.trailers = event.headers
        elif isinstance(event, SettingsChanged):
            self._settings_received = True
            self._window_opened(0)
            self._on_change()
        elif isinstance(event, ConnectionTerminated) and not self._h2.closed:
            self._goaway(event.last_stream_id, h2wire.error_name(event.error_code))

    def _reset_by_peer(self, s: H2Stream, error_code: int, broken_rule: str) -> None:
        if broken_rule:  # the codec reset it: the upstream broke a rule of RFC 9113 on it
            name = h2wire.error_name(error_code)
            self._fail(s, f"the upstream's stream broke HTTP/2 ({broken_rule}; {name})")
            return
        if error_code == h2wire.REFUSED_STREAM and not s.answered:
            msg = f"{self._label} refused stream {s.stream_id} (REFUSED_STREAM): not processed"
            s.error = RefusedStream(msg, endpoint=self._key)
        self._fail(s, f"the upstream reset the stream ({h2wire.error_name(error_code)})")

    def _window_opened(self, stream_id: int) -> None:
        if stream_id == 0:
            for each in self._streams.values():
                each.window.set()
        elif (s := self._streams.get(stream_id)) is not None:
            s.window.set()

    def _goaway(self, last_stream_id: int, error_code: object) -> None:
        self.last_stream_id = last_stream_id
        self.draining = True
        for s in list(self._streams.values()):
            if s.stream_id > last_stream_id:
                msg = (
                    f"{self._label} sent GOAWAY (last stream {last_stream_id}, code "
                    f"{error_code}): stream {s.stream_id} was not processed, retry it"
                )
                s.error = GoawayReceived(msg, endpoint=self._key)
                self._forget(s)
        self._on_change()

    def _fail(self, s: H2Stream, reason: str) -> None:
        if s.error is None and not s.ended:
            msg = f"{self._label}: {reason} (stream {s.stream_id})"
            if s.answered:
                s.error = UpstreamStreamBroken(msg + " after response headers", endpoint=self._key)
            else:
                s.error = ResetBeforeHeaders(msg + " before response headers", endpoint=self._key)
        self._forget(s)

    def _forget(self, s: H2Stream) -> None:
        """The stream can make no more progress: wake its waiters, stop its body pump."""
        s.wake()
        if s.pump_scope is not None:
            s.pump_scope.cancel()
