"""Cheaper ``h2`` internals for the proxy's connections, with h2's behaviour unchanged.

:class:`FastH2Connection` is ``h2.connection.H2Connection`` minus per-frame work whose result
nobody uses: it does not build ``repr(frame)`` for a trace log that is discarded, it
serializes outgoing frames without a generator and a debug assertion, and it scans its
streams to count the open ones only when the count could reach the concurrency limit.

:func:`install` (idempotent, called by the proxy's session classes) makes process-wide
changes to h2/hpack/hyperframe that keep their observable behaviour:

- h2's inbound header validation first runs one single-pass check (compiled regular
  expressions instead of a Python loop over every byte); a block it cannot prove valid goes
  through h2's own validator, which raises exactly the error it always raised. So a valid
  block is accepted and an invalid one is rejected with the same message as before.
- h2 does not copy a header block it sends when it is already all bytes.
- hyperframe computes each frame class's set of valid flag names once, not once per frame.
- hpack's per-header ``log.debug`` calls (two per decoded header, never enabled in a gateway)
  become no-ops.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.exceptions
import h2.stream
import h2.utilities
import hpack.hpack
import hyperframe.flags
from hyperframe.frame import DataFrame, Frame, RstStreamFrame

from proxy.protocol.hpack_fast import FastDecoder, FastEncoder

_FRAME_HEADER = struct.Struct(">HBBBL")  # hyperframe's layout: 24-bit length, type, flags, id
_END_STREAM = 0x1

_ORIGINAL_VALIDATE = h2.utilities.validate_headers
_BAD_NAME = re.compile(rb"[^\x21-\x40\x5b-\x7e]")  # RFC 9113 §8.2.1 (no uppercase, no CTL/SP)
_BAD_VALUE = re.compile(rb"[\x00\n\r]")
_EDGE_SPACE = (0x20, 0x09)
_CONNECTION_HEADERS = frozenset(h2.utilities.CONNECTION_HEADERS)
_ALLOWED_PSEUDO = frozenset(h2.utilities._ALLOWED_PSEUDO_HEADER_FIELDS)
_check_pseudo = h2.utilities._check_pseudo_header_field_acceptability

Header = tuple[bytes, bytes]


def _plainly_valid(headers: list[Header], flags: Any) -> bool:  # noqa: PLR0911, PLR0912
    """True only if h2's validator would accept ``headers``; False when unsure."""
    pseudo: set[bytes] = set()
    regular = False
    method: bytes | None = None
    authority: bytes | None = None
    host: bytes | None = None
    request = not (flags.is_response_header or flags.is_trailer)
    for name, value in headers:
        if not name or _BAD_NAME.search(name) is not None or name.find(b":", 1) != -1:
            return False
        if value and (
            _BAD_VALUE.search(value) is not None
            or value[0] in _EDGE_SPACE
            or value[-1] in _EDGE_SPACE
        ):
            return False
        if name[0] == 0x3A:
            if regular or name in pseudo or name not in _ALLOWED_PSEUDO:
                return False
            pseudo.add(name)
            if name == b":method":
                method = value
            elif name == b":authority":
                authority = value
            elif name == b":path" and request and not value:
                return False
            continue
        regular = True
        if name in _CONNECTION_HEADERS:
            return False
        if name == b"te" and value.lower() != b"trailers":
            return False
        if name == b"host":
            if host is not None:
                return False
            host = value
    try:
        _check_pseudo(pseudo, method, flags)
    except h2.exceptions.ProtocolError:
        return False
    if request:
        if authority is None and host is None:
            return False
        if authority is not None and host is not None and authority != host:
            return False
    return True


def validate_headers(headers: Iterable[Header], flags: Any) -> Iterable[Header]:
    """Drop-in for ``h2.utilities.validate_headers`` (same acceptance, same errors)."""
    block = headers if isinstance(headers, list) else list(headers)
    if _plainly_valid(block, flags):
        return block
    return _ORIGINAL_VALIDATE(block, flags)


class _QuietLog:
    """Stands in for hpack's module logger: its debug calls cost a call, not a lookup chain."""

    def debug(self, *args: object, **kwargs: object) -> None:
        pass

    def isEnabledFor(self, level: int) -> bool:
        return False


_ORIGINAL_UTF8_ENCODE = h2.utilities.utf8_encode_headers


def utf8_encode_headers(headers: Iterable[Any]) -> list[Any]:
    """h2 converts every header of every block it sends to bytes (new tuples); a block that
    is already all bytes (ours always is) is returned as it is."""
    block = headers if isinstance(headers, list) else list(headers)
    for header in block:
        if type(header[0]) is not bytes or type(header[1]) is not bytes:
            return _ORIGINAL_UTF8_ENCODE(block)
    return block


_FLAG_NAMES: dict[int, tuple[object, set[str]]] = {}
_FLAG_CACHE_LIMIT = 64


def _flags_init(self: hyperframe.flags.Flags, defined_flags: Iterable[Any]) -> None:
    """hyperframe's ``Flags.__init__`` built the set of valid names for every frame; frames
    pass their class's ``defined_flags`` list, so the set is computed once per list (the cache
    holds the list itself, so its ``id`` cannot be reused; it is bounded)."""
    entry = _FLAG_NAMES.get(id(defined_flags))
    if entry is None or entry[0] is not defined_flags:
        entry = (defined_flags, {flag.name for flag in defined_flags})
        if len(_FLAG_NAMES) < _FLAG_CACHE_LIMIT:
            _FLAG_NAMES[id(defined_flags)] = entry
    self._valid_flags = entry[1]
    self._flags = set()


_installed = False


def install() -> None:
    """Apply the process-wide changes described in the module docstring (idempotent)."""
    global _installed  # noqa: PLW0603 - one-time process setup
    if _installed:
        return
    _installed = True
    h2.stream.validate_headers = validate_headers  # type: ignore[attr-defined,assignment]
    hyperframe.flags.Flags.__init__ = _flags_init  # type: ignore[method-assign]
    h2.stream.utf8_encode_headers = utf8_encode_headers  # type: ignore[attr-defined]
    hpack.hpack.log = _QuietLog()  # type: ignore[assignment]


class FastH2Connection(h2.connection.H2Connection):
    """``h2.connection.H2Connection`` without the discarded per-frame work (see module doc),
    with the fast HPACK encoder and decoder of :mod:`proxy.protocol.hpack_fast`."""

    def __init__(self, config: h2.config.H2Configuration | None = None) -> None:
        super().__init__(config=config)
        self.encoder = FastEncoder()  # type: ignore[assignment]
        decoder = FastDecoder()
        decoder.max_header_list_size = self.decoder.max_header_list_size
        decoder.max_allowed_table_size = self.decoder.max_allowed_table_size
        self.decoder = decoder

    def _open_streams(self, remainder: int) -> int:
        """h2 counts open streams (scanning every stream, and forgetting closed ones) only to
        compare the count with SETTINGS_MAX_CONCURRENT_STREAMS before opening one. While
        the streams it still tracks are fewer than that limit, their number answers the same
        (the true count is no larger); at the limit, h2's exact scan runs."""
        outbound = remainder == int(self.config.client_side)
        settings = self.remote_settings if outbound else self.local_settings
        tracked = len(self.streams)
        if tracked < settings.max_concurrent_streams:
            return tracked
        return super()._open_streams(remainder)

    def _local_settings_acked(self) -> Any:
        """h2 applies a larger SETTINGS_MAX_FRAME_SIZE to its frame buffer only on the next
        ``receive_data``, so a big frame arriving in the same read as the peer's SETTINGS ACK
        was refused as too large; apply it at once."""
        changes = super()._local_settings_acked()
        self.incoming_buffer.max_frame_size = self.max_inbound_frame_size
        return changes

    def _prepare_for_sending(self, frames: list[Frame]) -> None:
        out = self._data_to_send
        for f in frames:
            if type(f) is DataFrame and not f.pad_length and "PADDED" not in f.flags:
                # hyperframe joins the payload into a body, then header + body, then h2
                # appends that: three copies of a bulk payload; here it is copied once.
                data = f.data
                size = len(data)
                flags = _END_STREAM if "END_STREAM" in f.flags else 0
                out += _FRAME_HEADER.pack(size >> 8, size & 0xFF, 0, flags, f.stream_id)
                out += data
            else:
                out += f.serialize()

    def _receive_frame(self, frame: Frame) -> list[Any]:
        """h2's ``_receive_frame`` (h2 4.x) without ``repr(frame)`` for a no-op trace log."""
        try:
            frames, events = self._frame_dispatch_table[frame.__class__](frame)
        except h2.exceptions.StreamClosedError as e:
            if self._stream_is_closed_by_reset(e.stream_id):
                f = RstStreamFrame(e.stream_id)
                f.error_code = e.error_code
                self._prepare_for_sending([f])
                events = e._events
            else:
                raise
        except h2.exceptions.StreamIDTooLowError as e:
            if self._stream_is_closed_by_reset(e.stream_id):
                f = RstStreamFrame(e.stream_id)
                f.error_code = h2.errors.ErrorCodes.STREAM_CLOSED
                self._prepare_for_sending([f])
                events = []
            elif self._stream_is_closed_by_end(e.stream_id):
                raise h2.exceptions.StreamClosedError(e.stream_id) from e
            else:
                raise
        else:
            self._prepare_for_sending(frames)
        return events  # type: ignore[no-any-return]
