"""The receive side of :class:`proxy.protocol.h2core.H2Core`: the frame loop, DATA and
header blocks (control frames: :mod:`proxy.protocol.h2control`).

Every rule of RFC 9113 a peer can break maps to a connection error (raise
:class:`ConnectionError_`) or a stream error (``_stream_error``), as §5.4 and §6 assign them.
"""

from __future__ import annotations

from hpack.exceptions import OversizedHeaderListError

from proxy.protocol import h2wire as w
from proxy.protocol.events import (
    DataReceived,
    RequestReceived,
    ResponseReceived,
    TrailersReceived,
)
from proxy.protocol.h2control import ConnectionError_, ControlMixin, Stream
from proxy.protocol.h2headers import (
    MalformedHeaders,
    check_trailers,
    content_length,
    parse_request,
    parse_response,
)

__all__ = ["ConnectionError_", "LeadMemo", "ReceiveMixin", "Stream"]

_U32 = w.U32.unpack_from
_NO_BODY_STATUS = (204, 304)
_MEMOS = 256  # parsed heads kept per connection (see ReceiveMixin._parse_request)

Header = tuple[bytes, bytes]
_Request = tuple[bytes, bytes, bytes, bytes, list[Header]]
_KeptRequest = tuple[bytes, bytes, bytes, bytes, tuple[Header, ...]]
# (the decoder's kept tuple, what was derived from it ...)
RequestMemo = tuple[object, _KeptRequest, int | None]
ResponseMemo = tuple[object, int, tuple[Header, ...], int]
LeadMemo = tuple[object, _KeptRequest | None]  # (a decoder's run, its head if usable)


def _parse_lead(lead: tuple[Header, ...]) -> _KeptRequest | None:
    """A run's request head, if the run holds ``:authority`` and is not a CONNECT (whose
    rules depend on fields a later part may hold); else None."""
    if not any(name == b":authority" for name, _ in lead):
        return None
    try:
        method, scheme, authority, path, fields = parse_request(lead, False)
    except MalformedHeaders:
        return None
    if method == b"CONNECT":
        return None
    return method, scheme, authority, path, tuple(fields)


class ReceiveMixin(ControlMixin):
    """Frame loop, DATA and header blocks; the state lives in
    :class:`proxy.protocol.h2core.H2Core`."""

    _request_memo: dict[int, RequestMemo]
    _response_memo: dict[int, ResponseMemo]
    _lead_memo: dict[int, LeadMemo]

    def _frames(self, src: bytes | bytearray | memoryview, pos: int) -> int:
        """Handle every complete frame in ``src`` from ``pos``; the offset reached. The
        payload of an unpadded DATA frame is delivered as it arrives (a 1 MiB frame is not
        buffered whole: no copies of it, and a tunnel forwards it sooner)."""
        end = len(src)
        limit = self._max_in_frame
        unpack = w.unpack_header
        with memoryview(src) as mv:
            if self._data_left:
                pos = self._data_continue(mv, pos, end)
            while end - pos >= 9:
                hi, lo, ftype, flags, sid = unpack(mv, pos)
                length = (hi << 16) | lo
                if length > limit:
                    raise ConnectionError_(
                        w.FRAME_SIZE_ERROR, f"frame of {length} bytes exceeds {limit}"
                    )
                start = pos + 9
                # Only an unpadded DATA frame is taken in pieces, and only when it is not
                # all here: a whole one is handled at once (no streaming state to carry).
                streamed = start + length > end
                if streamed and (ftype != w.DATA or flags & w.PADDED):
                    break
                pos = start + length
                sid &= w.MAX_STREAM_ID
                if self._hdr is not None and ftype != w.CONTINUATION:
                    raise ConnectionError_(w.PROTOCOL_ERROR, "frame inside a header block")
                if self._await_settings:
                    if ftype != w.SETTINGS or flags & w.ACK:
                        raise ConnectionError_(w.PROTOCOL_ERROR, "first frame is not SETTINGS")
                    self._await_settings = False
                if streamed:
                    self._data_stream = self._data_start(flags, sid, length)
                    self._data_sid = sid
                    self._data_end = bool(flags & w.END_STREAM)
                    self._data_left = length
                    pos = self._data_continue(mv, start, end)
                elif ftype == w.DATA:
                    self._on_data(mv[start:pos], flags, sid)
                elif ftype == w.HEADERS:
                    self._on_headers(mv[start:pos], flags, sid)
                else:
                    self._on_control(ftype, mv[start:pos], flags, sid)
        return pos

    @staticmethod
    def _unpad(payload: memoryview, flags: int) -> memoryview:
        if not flags & w.PADDED:
            return payload
        if not payload or payload[0] >= len(payload):
            raise ConnectionError_(w.PROTOCOL_ERROR, "padding exceeds the frame payload")
        return payload[1 : len(payload) - payload[0]]

    # -- DATA ----------------------------------------------------------------------------

    def _data_start(self, flags: int, sid: int, flow: int) -> Stream | None:
        """Checks and window accounting for a DATA frame of ``flow`` bytes; the stream that
        takes its payload, or ``None`` (then the bytes are credited back and dropped)."""
        if sid == 0:
            raise ConnectionError_(w.PROTOCOL_ERROR, "DATA on stream 0")
        if flow > self._conn_recv_window:
            raise ConnectionError_(w.FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        self._conn_recv_window -= flow
        s = self.streams.get(sid)
        if s is None or not s.remote_open or not s.headers_in:
            self.acknowledge(0, flow)  # nobody will consume these bytes
            if s is None and self._is_idle(sid):
                raise ConnectionError_(w.PROTOCOL_ERROR, f"DATA on idle stream {sid}")
            if s is not None or sid not in self._reset_ids:
                code = w.PROTOCOL_ERROR if s is not None and s.remote_open else w.STREAM_CLOSED
                self._stream_error(sid, code)
            return None
        if flow > s.recv_window:
            raise ConnectionError_(w.FLOW_CONTROL_ERROR, f"DATA beyond stream {sid}'s window")
        s.recv_window -= flow
        return s

    def _data_piece(self, s: Stream, sid: int, data: memoryview, flow: int) -> bool:
        """Deliver payload bytes; False if they broke the stream's content-length."""
        if s.expect_length >= 0:
            s.received += len(data)
            if s.received > s.expect_length:
                self._stream_error(sid, w.PROTOCOL_ERROR, "body longer than content-length")
                return False
        forward = s.forward
        if forward is None:
            self._events.append(DataReceived(sid, bytes(data), flow))
        else:
            forward(data, flow)
        return True

    def _data_continue(self, mv: memoryview, pos: int, end: int) -> int:
        """The next bytes of the current unpadded DATA frame; the offset after them."""
        n = min(self._data_left, end - pos)
        left = self._data_left - n
        self._data_left = left
        s = self._data_stream
        if s is None:
            return pos + n  # dropped, already credited
        sid = self._data_sid
        if self.streams.get(sid) is not s or (
            n and not self._data_piece(s, sid, mv[pos : pos + n], n)
        ):
            self._data_stream = None  # reset meanwhile: nobody consumes the rest
            self.acknowledge(0, n + left)
        elif not left:
            self._data_stream = None
            if self._data_end:
                self._remote_end(s, sid)
        return pos + n

    def _on_data(self, payload: memoryview, flags: int, sid: int) -> None:
        """A whole DATA frame, padded or not (an empty unpadded one delivers no bytes,
        as in pieces)."""
        flow = len(payload)
        s = self._data_start(flags, sid, flow)
        data = self._unpad(payload, flags)
        if s is None:
            return
        if flow and not self._data_piece(s, sid, data, flow):
            self.acknowledge(0, flow)
        elif flags & w.END_STREAM:
            self._remote_end(s, sid)

    # -- header blocks ---------------------------------------------------------------------

    def _on_headers(self, payload: memoryview, flags: int, sid: int) -> None:
        if sid == 0:
            raise ConnectionError_(w.PROTOCOL_ERROR, "HEADERS on stream 0")
        fragment = self._unpad(payload, flags)
        self_dependent = False
        if flags & w.PRIORITY_FLAG:
            if len(fragment) < 5:
                raise ConnectionError_(w.FRAME_SIZE_ERROR, "HEADERS too short for PRIORITY")
            self_dependent = _U32(fragment)[0] & w.MAX_STREAM_ID == sid
            fragment = fragment[5:]
        end_stream = bool(flags & w.END_STREAM)
        if flags & w.END_HEADERS:
            self._on_block(sid, bytes(fragment), end_stream, self_dependent)
        else:
            self._hdr = [sid, end_stream, [bytes(fragment)], len(fragment), self_dependent]

    def _on_continuation(self, payload: memoryview, flags: int, sid: int) -> None:
        hdr = self._hdr
        if hdr is None or hdr[0] != sid:
            raise ConnectionError_(w.PROTOCOL_ERROR, "CONTINUATION without a header block")
        parts = hdr[2]
        assert isinstance(parts, list)
        parts.append(bytes(payload))
        size = int(hdr[3]) + len(payload)  # type: ignore[call-overload]
        if size > self._block_limit:
            raise ConnectionError_(w.ENHANCE_YOUR_CALM, "header block too large")
        hdr[3] = size
        if flags & w.END_HEADERS:
            self._hdr = None
            self._on_block(sid, b"".join(parts), bool(hdr[1]), bool(hdr[4]))

    def _on_block(self, sid: int, block: bytes, end_stream: bool, self_dependent: bool) -> None:
        try:
            headers = self.decoder.decode(block, raw=True)
        except OversizedHeaderListError as err:
            raise ConnectionError_(w.ENHANCE_YOUR_CALM, f"header list too large: {err}") from err
        except Exception as err:
            raise ConnectionError_(w.COMPRESSION_ERROR, f"HPACK decoding failed: {err}") from err
        block_list: list[tuple[bytes, bytes]] = headers  # type: ignore[assignment]
        if self_dependent:
            self._stream_error(sid, w.PROTOCOL_ERROR)  # a stream cannot depend on itself
        elif self.client:
            self._response_block(sid, block_list, end_stream)
        else:
            self._request_block(sid, block_list, end_stream)

    # -- parsed heads, memoized per kept block ----------------------------------------------
    # The decoder returns the same kept tuple for the same block bytes while its table is
    # unchanged (see FastDecoder): what parse_request / parse_response and content_length
    # derive from it is the same too (1.9 / 0.5 + 0.4 µs). Memos hold their kept tuple, so
    # its id is not reused while they live; the regular fields are copied for each stream.
    # A block that is not kept (a peer gateway's: a new trace id in each) may start with a
    # kept run of references (FastDecoder.lead) holding the pseudo-header fields: its head
    # is memoized the same way, the rest of the block appended to its regular fields.

    def _parse_request(self, block: list[Header], end: bool) -> tuple[_Request, int]:
        """The request head and its content-length (-1: none, or not checked on a
        non-validating leg's body-less request); raises MalformedHeaders."""
        need_length = self.validate or not end
        kept = self.decoder.kept
        memo = self._request_memo.get(id(kept)) if kept is not None else None
        if memo is not None and memo[0] is kept:
            method, scheme, authority, path, fields = memo[1]
            known = memo[2]
            if not need_length:
                known = -1
            elif known is None:  # kept from a body-less request on a non-validating leg
                known = content_length(fields)
            return (method, scheme, authority, path, list(fields)), known
        lead = self.decoder.lead if kept is None else None  # a kept block: memo below
        if lead is not None and not self.validate:
            found = self._after_lead(lead, block)
            if found is not None:
                return found, content_length(found[4]) if need_length else -1
        head = parse_request(block, self.validate)
        length = content_length(head[4]) if need_length else -1
        if kept is not None:
            memos = self._request_memo
            if len(memos) >= _MEMOS:
                memos.clear()
            stored = (*head[:4], tuple(head[4]))
            memos[id(kept)] = (kept, stored, length if need_length else None)
        return head, length

    def _after_lead(self, lead: tuple[Header, ...], block: list[Header]) -> _Request | None:
        """On the non-validating leg, the head of a block that starts with the decoder's
        kept run ``lead`` (all its pseudo-header fields, ``:authority`` among them, and no
        CONNECT): the run's part parsed once, then the rest, which must be regular fields
        (a trace id and the like); ``None``: parse the whole block."""
        memo = self._lead_memo.get(id(lead))
        if memo is None or memo[0] is not lead:
            memos = self._lead_memo
            if len(memos) >= _MEMOS:
                memos.clear()
            memo = memos[id(lead)] = (lead, _parse_lead(lead))
        head = memo[1]
        if head is None:
            return None
        rest = block[len(lead) :]
        for name, _ in rest:
            if name[:1] == b":":
                return None
        method, scheme, authority, path, fields = head
        return method, scheme, authority, path, [*fields, *rest]

    def _parse_response(self, block: list[Header]) -> tuple[int, list[Header], int]:
        """Status, regular fields and content-length of a response head; raises
        MalformedHeaders."""
        kept = self.decoder.kept
        memo = self._response_memo.get(id(kept)) if kept is not None else None
        if memo is not None and memo[0] is kept:
            return memo[1], list(memo[2]), memo[3]
        status, headers = parse_response(block, self.validate)
        length = content_length(headers)
        if kept is not None:
            memos = self._response_memo
            if len(memos) >= _MEMOS:
                memos.clear()
            memos[id(kept)] = (kept, status, tuple(headers), length)
        return status, headers, length

    def _request_block(self, sid: int, block: list[tuple[bytes, bytes]], end: bool) -> None:
        s = self.streams.get(sid)
        if s is not None:
            self._trailers(s, sid, block, end)
            return
        if not sid & 1:
            raise ConnectionError_(w.PROTOCOL_ERROR, f"client opened even stream {sid}")
        if sid <= self.highest_inbound:
            if sid in self._reset_ids:
                return
            raise ConnectionError_(w.STREAM_CLOSED, f"HEADERS on closed stream {sid}")
        self.highest_inbound = sid
        if len(self.streams) >= self._local_max_streams:
            self._stream_error(sid, w.REFUSED_STREAM)
            return
        try:
            (method, scheme, authority, path, headers), length = self._parse_request(block, end)
        except MalformedHeaders as err:
            self._stream_error(sid, w.PROTOCOL_ERROR, str(err))
            return
        if end and length > 0:
            self._stream_error(sid, w.PROTOCOL_ERROR)
            return
        s = Stream(self._send_initial, self._recv_initial)
        s.headers_in = True
        s.remote_open = not end
        s.expect_length = length
        self.streams[sid] = s
        self._events.append(RequestReceived(sid, method, scheme, authority, path, headers, end))

    def _response_block(self, sid: int, block: list[tuple[bytes, bytes]], end: bool) -> None:
        s = self.streams.get(sid)
        if s is None:
            if not sid & 1:
                raise ConnectionError_(w.PROTOCOL_ERROR, f"server opened stream {sid}")
            if sid >= self._next_id:
                raise ConnectionError_(w.PROTOCOL_ERROR, f"HEADERS on idle stream {sid}")
            if sid not in self._reset_ids:
                self._stream_error(sid, w.STREAM_CLOSED)
            return
        if s.headers_in:
            self._trailers(s, sid, block, end)
            return
        try:
            status, headers, length = self._parse_response(block)
        except MalformedHeaders as err:
            self._stream_error(sid, w.PROTOCOL_ERROR, str(err))
            return
        if status < 200:
            if end:
                self._stream_error(sid, w.PROTOCOL_ERROR)
            return  # an informational head: the final one follows
        s.headers_in = True
        if length >= 0 and not s.head_request and status not in _NO_BODY_STATUS:
            s.expect_length = length
        self._events.append(ResponseReceived(sid, status, headers, end))
        if end:
            self._remote_end(s, sid)

    def _trailers(self, s: Stream, sid: int, block: list[tuple[bytes, bytes]], end: bool) -> None:
        if not s.remote_open:
            self._stream_error(sid, w.STREAM_CLOSED)
            return
        try:
            if not end:
                raise MalformedHeaders("trailers without END_STREAM")
            check_trailers(block, self.validate)
        except MalformedHeaders as err:
            self._stream_error(sid, w.PROTOCOL_ERROR, str(err))
            return
        if self.client:
            self._events.append(TrailersReceived(sid, list(block)))
        self._remote_end(s, sid)
