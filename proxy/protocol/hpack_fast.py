"""A fast HPACK encoder (RFC 7541) that h2 connections use instead of ``hpack.Encoder``; the
decoder with its fast paths is :class:`proxy.protocol.hpack_decode.FastDecoder` (re-exported).

``hpack.Encoder`` searches its dynamic table linearly, Huffman-codes every string and logs every
header: about a third of a proxied request's CPU. This encoder trades a few bytes on the wire
for speed:

- no Huffman coding (strings are sent raw, which RFC 7541 allows);
- the dynamic table is filled once and never evicted from: a header is inserted only while
  it fits in the table size the peer allows, so every index stays valid with no bookkeeping;
  the encoded form of every indexed header is cached (one dict lookup per header);
- values that change every request (``:path``, ``traceparent``, ``content-length`` ...) are
  sent as literals without indexing; credentials (``authorization``, ``cookie`` ...) as
  never-indexed literals (RFC 7541 §7.1.3), so they never enter any compression context.

A peer that changes SETTINGS_HEADER_TABLE_SIZE gets a table-size update to 0 (emptying its
table) and then to the new size at the start of the next header block; our table restarts.
"""

from __future__ import annotations

from collections.abc import Iterable

from hpack import NeverIndexedHeaderTuple
from hpack.table import HeaderTable

from proxy.protocol.hpack_decode import FastDecoder

_STATIC: tuple[tuple[bytes, bytes], ...] = HeaderTable.STATIC_TABLE
_STATIC_FULL: dict[tuple[bytes, bytes], int] = {}
_STATIC_NAME: dict[bytes, int] = {}
for _i, (_n, _v) in enumerate(_STATIC, start=1):
    _STATIC_FULL.setdefault((_n, _v), _i)
    _STATIC_NAME.setdefault(_n, _i)

NEVER_INDEXED: frozenset[bytes] = frozenset(
    {b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"}
)
VOLATILE: frozenset[bytes] = frozenset(
    {
        b":path",
        b"traceparent",
        b"tracestate",
        b"content-length",
        b"date",
        b"etag",
        b"last-modified",
        b"x-request-id",
        b"age",
        b"expires",
        b"if-none-match",
        b"if-modified-since",
        b"range",
        b"content-range",
    }
)
MAX_INDEXED_VALUE = 256
SHORT_LITERAL = 8
MAX_SHORT_LITERALS = 512
DEFAULT_TABLE_SIZE = 4096
_ENTRY_OVERHEAD = 32  # RFC 7541 §4.1


def encode_integer(value: int, prefix_bits: int, flags: int) -> bytes:
    """RFC 7541 §5.1 integer with an ``prefix_bits``-bit prefix; ``flags`` fills the rest."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((flags | value,))
    out = bytearray((flags | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(data: bytes) -> bytes:
    """A raw (non-Huffman) string literal."""
    n = len(data)
    if n < 127:
        return bytes((n,)) + data
    return encode_integer(n, 7, 0) + data


# What precedes the value in a literal without indexing (or never indexed), by name and
# flags: the name's static index, or the name itself. It depends on neither connection nor
# dynamic table; volatile fields (a new trace id each request) rebuilt it every time.
_LITERAL_HEADS: dict[tuple[bytes, int], bytes] = {}
_LITERAL_HEADS_LIMIT = 1024
_LITERAL_HEAD_NAME = 64  # longest name kept


class FastEncoder:
    """Drop-in for ``hpack.Encoder`` as h2 uses it (``encode`` and ``header_table_size``).

    One per connection (the dynamic table is connection state)."""

    __slots__ = ("_cache", "_literals", "_max", "_order", "_pending", "_used")

    def __init__(self) -> None:
        self._cache: dict[tuple[bytes, bytes], bytes] = {}
        self._literals = 0  # short non-indexed literals kept in the cache (bounded)
        self._order: list[tuple[bytes, bytes]] = []
        self._used = 0
        self._max = DEFAULT_TABLE_SIZE
        self._pending = b""

    @property
    def header_table_size(self) -> int:
        return self._max

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        if value == self._max:
            return
        self._max = value
        self._cache.clear()
        self._literals = 0
        self._order.clear()
        self._used = 0
        self._pending = encode_integer(0, 5, 0x20) + encode_integer(value, 5, 0x20)

    def encode(self, headers: Iterable[tuple[bytes, bytes]], huffman: bool = True) -> bytes:
        """The header block for ``headers`` (bytes name/value pairs; ``huffman`` ignored)."""
        cache = self._cache
        parts: list[bytes] = []
        if self._pending:
            parts.append(self._pending)
            self._pending = b""
        append = parts.append
        for header in headers:
            # A header is its own cache key (tuples of equal items hash and compare equal).
            encoded = cache.get(header)
            if encoded is None or type(header) is NeverIndexedHeaderTuple:
                name, value = header[0], header[1]
                if type(header) is NeverIndexedHeaderTuple:  # RFC 7541 §7.1.3: keep it so
                    encoded = self._literal(name, _STATIC_NAME.get(name, 0), value, 0x10)
                else:
                    encoded = self._encode_new(name, value)
            append(encoded)
        return b"".join(parts)

    def _encode_new(self, name: bytes, value: bytes) -> bytes:
        key = (name, value)
        index = _STATIC_FULL.get(key)
        if index is not None:
            encoded = encode_integer(index, 7, 0x80)
            self._cache[key] = encoded
            return encoded
        name_index = _STATIC_NAME.get(name, 0)
        if name in NEVER_INDEXED:
            return self._literal(name, name_index, value, 0x10)
        size = len(name) + len(value) + _ENTRY_OVERHEAD
        if name in VOLATILE or len(value) > MAX_INDEXED_VALUE or self._used + size > self._max:
            encoded = self._literal(name, name_index, value, 0x00)
            if len(value) <= SHORT_LITERAL and self._literals < MAX_SHORT_LITERALS:
                # content-length: 2 and the like repeat; a literal does not depend on the
                # dynamic table, so its encoded form stays valid.
                self._literals += 1
                self._cache[key] = encoded
            return encoded
        # Insert with incremental indexing; afterwards it is the newest entry (index 62) and
        # every entry inserted later pushes it up by one, so its index is fixed relative to
        # the insertion count. Cached indexed forms are rebuilt on each insertion.
        encoded = self._literal_indexed(name, name_index, value)
        self._used += size
        self._reindex(key)
        return encoded

    @staticmethod
    def _literal(name: bytes, name_index: int, value: bytes, flags: int) -> bytes:
        head = _LITERAL_HEADS.get((name, flags))
        if head is None:
            if name_index:
                head = encode_integer(name_index, 4, flags)
            else:
                head = bytes((flags,)) + _string(name)
            if len(name) <= _LITERAL_HEAD_NAME and len(_LITERAL_HEADS) < _LITERAL_HEADS_LIMIT:
                _LITERAL_HEADS[name, flags] = head
        n = len(value)
        if n < 127:
            return head + bytes((n,)) + value
        return head + encode_integer(n, 7, 0) + value

    @staticmethod
    def _literal_indexed(name: bytes, name_index: int, value: bytes) -> bytes:
        if name_index:
            return encode_integer(name_index, 6, 0x40) + _string(value)
        return b"\x40" + _string(name) + _string(value)

    def _reindex(self, key: tuple[bytes, bytes]) -> None:
        """Record ``key`` as the newest dynamic entry; shift the others' cached indexes."""
        dynamic = self._order
        dynamic.append(key)
        total = len(dynamic)
        for position, entry in enumerate(dynamic):
            self._cache[entry] = encode_integer(61 + total - position, 7, 0x80)


__all__ = ["FastDecoder", "FastEncoder", "encode_integer"]
