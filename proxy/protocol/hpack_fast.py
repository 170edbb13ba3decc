"""A fast HPACK encoder (RFC 7541) that h2 connections use instead of ``hpack.Encoder``, and
a decoder with a fast path for static-table references (:class:`FastDecoder`).

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

from collections.abc import Iterable, Sequence

import hpack.hpack
from hpack import Decoder, HeaderTuple, NeverIndexedHeaderTuple
from hpack.exceptions import HPACKDecodingError, OversizedHeaderListError
from hpack.hpack import _unicode_if_needed
from hpack.huffman_table import decode_huffman
from hpack.table import HeaderTable

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
        if name_index:
            return encode_integer(name_index, 4, flags) + _string(value)
        return bytes((flags,)) + _string(name) + _string(value)

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


_STATIC_TUPLES: tuple[HeaderTuple, ...] = tuple(HeaderTuple(n, v) for n, v in _STATIC)
_STATIC_COUNT = len(_STATIC)
# HeaderTuple's own __new__ is a Python function; building the tuple directly is ~5x cheaper.
_new_tuple = tuple.__new__
_HUFFMAN_CACHE: dict[bytes, bytes] = {}  # short Huffman strings seen before -> decoded
_HUFFMAN_CACHE_LIMIT = 4096
_HUFFMAN_CACHED_LENGTH = 64


def _huffman(raw: bytes) -> bytes:
    """``decode_huffman`` with a bounded cache for short strings (header values repeat)."""
    found = _HUFFMAN_CACHE.get(raw)
    if found is None:
        found = decode_huffman(raw)
        if len(raw) <= _HUFFMAN_CACHED_LENGTH and len(_HUFFMAN_CACHE) < _HUFFMAN_CACHE_LIMIT:
            _HUFFMAN_CACHE[raw] = found
    return found


def _string_at(data: bytes, at: int) -> tuple[bytes, int] | None:
    """The string literal at ``at`` and the offset after it, if its length fits the first
    byte and it is complete; else ``None``."""
    if at >= len(data):
        return None
    length_byte = data[at]
    length = length_byte & 0x7F
    end = at + 1 + length
    if length == 0x7F or end > len(data):
        return None
    raw = data[at + 1 : end]
    return (_huffman(raw) if length_byte & 0x80 else raw), end


class _QuietLog:
    """Stands in for hpack's module logger: its per-header debug calls (never enabled in a
    gateway) cost a call instead of a logging lookup chain."""

    def debug(self, *args: object, **kwargs: object) -> None:
        pass

    def isEnabledFor(self, level: int) -> bool:
        return False


hpack.hpack.log = _QuietLog()  # type: ignore[assignment]


# Decoded header blocks kept per decoder (see FastDecoder): how many, up to what size; after
# more misses in a row than are kept (every block new: a trace id in each request), only one
# block in _KEEP_SOME is still kept, so that a block that starts repeating is found again.
_BLOCKS_KEPT = 256
_BLOCK_KEPT_SIZE = 256
_KEEP_SOME = 64


class FastDecoder(Decoder):
    """``hpack.Decoder`` whose ``decode(raw=True)`` answers one-byte table references
    directly (static ones from prebuilt tuples) and literals with a one-byte indexed name and
    a short value (:meth:`_short_literal`); every other representation, every check and
    every error is the parent's, in the same order.

    A peer sends the same header block again and again (a load generator's requests, a
    backend's responses once their fields are in the dynamic table): a block that did not
    change the dynamic table decodes to the same list as long as neither the table nor the
    limits change, so such blocks are kept (bounded) with their result; a block that
    inserts or resizes, or a new limit, forgets them all."""

    def __init__(self, max_header_list_size: int = 2**16) -> None:
        self._blocks: dict[bytes, tuple[HeaderTuple, ...]] = {}
        self._misses = 0  # blocks decoded in a row that were not kept already
        # The kept result the last decode returned (a copy of), or None: the same object
        # for the same bytes while nothing changed, so a caller may memoize what it derives.
        self.kept: tuple[HeaderTuple, ...] | None = None
        super().__init__(max_header_list_size)

    # The limits a kept block was checked against: setting one forgets the kept blocks.
    @property
    def max_header_list_size(self) -> int:
        return self._max_list

    @max_header_list_size.setter
    def max_header_list_size(self, value: int) -> None:
        self._blocks.clear()
        self._max_list = value

    @property
    def max_allowed_table_size(self) -> int:
        return self._max_allowed

    @max_allowed_table_size.setter
    def max_allowed_table_size(self, value: int) -> None:
        self._blocks.clear()
        self._max_allowed = value

    @property
    def header_table_size(self) -> int:
        return self.header_table.maxsize

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        self._blocks.clear()
        self.header_table.maxsize = value

    def decode(self, data: bytes, raw: bool = False) -> Iterable[HeaderTuple]:
        blocks = self._blocks
        self.kept = None
        if not raw:
            blocks.clear()
            return super().decode(data, raw)
        kept = blocks.get(data) if type(data) is bytes else None
        if kept is not None:
            self._misses = 0
            self.kept = kept
            return list(kept)
        headers, changed = self._decode_block(data)
        if changed:  # the block changed the table: what was kept may be stale
            blocks.clear()
        elif type(data) is bytes and len(data) <= _BLOCK_KEPT_SIZE:
            misses = self._misses = self._misses + 1
            if misses <= _BLOCKS_KEPT or not misses % _KEEP_SOME:
                if len(blocks) >= _BLOCKS_KEPT:
                    blocks.clear()
                blocks[data] = self.kept = tuple(headers)
        return headers

    def _decode_block(self, data: bytes) -> tuple[list[HeaderTuple], bool]:
        """The decoded block, and whether it changed the dynamic table (an insertion or a
        size update)."""
        mem = memoryview(data)
        changed = False
        headers: list[HeaderTuple] = []
        limit = self.max_header_list_size
        dynamic = self.header_table.dynamic_entries
        inflated = 0
        i, end = 0, len(data)
        while i < end:
            first = data[i]
            header: HeaderTuple | None
            if first & 0x80:
                index = first & 0x7F
                if 0 < index <= _STATIC_COUNT:
                    header, consumed = _STATIC_TUPLES[index - 1], 1
                elif _STATIC_COUNT < index < 0x7F and index - 62 < len(dynamic):
                    entry = dynamic[index - 62]
                    header, consumed = _new_tuple(HeaderTuple, entry), 1
                else:
                    found, consumed = self._decode_indexed(mem[i:])
                    header = _unicode_if_needed(found, True)
            elif first & 0xE0 == 0x20:
                if headers:
                    msg = "Table size update not at the start of the block"
                    raise HPACKDecodingError(msg)
                consumed = self._update_encoding_context(mem[i:])
                header = None
                changed = True
            else:
                changed = changed or bool(first & 0x40)  # incremental indexing inserts
                short = self._short_literal(data, i, first, dynamic)
                if short is None:
                    short = self._literal(mem[i:], first)
                header, consumed = short
            if header:
                headers.append(header)
                inflated += len(header[0]) + len(header[1]) + _ENTRY_OVERHEAD
                if inflated > limit:
                    msg = f"A header list larger than {limit} has been received"
                    raise OversizedHeaderListError(msg)
            i += consumed
        self._assert_valid_table_size()
        return headers, changed

    def _short_literal(
        self, data: bytes, i: int, first: int, dynamic: Sequence[tuple[bytes, bytes]]
    ) -> tuple[HeaderTuple, int] | None:
        """A literal (RFC 7541 §6.2) whose name index (or literal name length) and value
        length each fit one byte, and whose indexed name is in the table; else ``None``
        (the parent's path decodes it, with its checks and errors)."""
        indexing = first & 0x40
        mask = 0x3F if indexing else 0x0F
        index = first & mask
        at = i + 1
        if index == mask and at < len(data) and data[at] < 0x80:
            # A name index past the prefix in one more byte (RFC 7541 §5.1): how our own
            # encoder sends volatile fields by static name (content-length is 28, date 33).
            index += data[at]
            at += 1
        if index == 0:  # a literal name (RFC 7541 §6.2, "new name")
            found = _string_at(data, at)
            if found is None:
                return None
            name, at = found
        elif index == mask:
            return None  # a longer integer: the parent's path
        elif index <= _STATIC_COUNT:
            name = _STATIC[index - 1][0]
        elif index - 62 < len(dynamic):
            name = dynamic[index - 62][0]
        else:
            return None
        found = _string_at(data, at)
        if found is None:
            return None
        value, end = found
        if indexing:
            self.header_table.add(name, value)
        kind = NeverIndexedHeaderTuple if first & 0x10 and not indexing else HeaderTuple
        return _new_tuple(kind, (name, value)), end - i

    def _literal(self, mem: memoryview, first: int) -> tuple[HeaderTuple, int]:
        if first & 0x40:
            found, consumed = self._decode_literal_index(mem)
        else:
            found, consumed = self._decode_literal_no_index(mem)
        return _unicode_if_needed(found, True), consumed
