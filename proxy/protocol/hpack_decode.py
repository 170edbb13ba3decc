"""The HPACK decoder (RFC 7541) of our HTTP/2 codec: ``hpack.Decoder`` with fast paths.

One-byte table references are answered directly (static ones from prebuilt tuples), literals
with a one-byte indexed name and a short value without the parent's general path; a block
that leaves the dynamic table alone is kept whole with its result, and runs of one-byte
references inside blocks that are not (a trace id differs in each request) are kept by their
bytes. Every other representation, every check and every error is the parent's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import hpack.hpack
from hpack import Decoder, HeaderTuple, NeverIndexedHeaderTuple
from hpack.exceptions import HPACKDecodingError, OversizedHeaderListError
from hpack.hpack import _unicode_if_needed
from hpack.huffman_table import decode_huffman
from hpack.table import HeaderTable

_STATIC: tuple[tuple[bytes, bytes], ...] = HeaderTable.STATIC_TABLE
_ENTRY_OVERHEAD = 32  # RFC 7541 §4.1
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
# Runs of one-byte table references (index 1-126) inside blocks that are not kept whole: a
# peer's request blocks differ in one literal (a trace id) between the same references.
_ONE_BYTE_REFS = re.compile(rb"[\x81-\xfe]{2,}").match
_RUNS_KEPT = 256


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
        # run of reference bytes -> (its fields, their RFC 7541 size); valid while the
        # dynamic table is unchanged, so cleared with every insertion or resize
        self._runs: dict[bytes, tuple[tuple[HeaderTuple, ...], int]] = {}
        self._misses = 0  # blocks decoded in a row that were not kept already
        # The kept result the last decode returned (a copy of), or None: the same object
        # for the same bytes while nothing changed, so a caller may memoize what it derives.
        self.kept: tuple[HeaderTuple, ...] | None = None
        # For a block decoded now (not kept whole) that starts with a run of references:
        # that run's kept fields (the same object while the table is unchanged), which are
        # the first fields of the result; else None.
        self.lead: tuple[HeaderTuple, ...] | None = None
        super().__init__(max_header_list_size)

    def _forget_kept(self) -> None:
        """Drop the kept blocks and runs: what they were checked or decoded against changed."""
        self._blocks.clear()
        self._runs.clear()

    # The limits a kept block was checked against: setting one forgets the kept blocks.
    @property
    def max_header_list_size(self) -> int:
        return self._max_list

    @max_header_list_size.setter
    def max_header_list_size(self, value: int) -> None:
        self._forget_kept()
        self._max_list = value

    @property
    def max_allowed_table_size(self) -> int:
        return self._max_allowed

    @max_allowed_table_size.setter
    def max_allowed_table_size(self, value: int) -> None:
        self._forget_kept()
        self._max_allowed = value

    @property
    def header_table_size(self) -> int:
        return self.header_table.maxsize

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        self._forget_kept()
        self.header_table.maxsize = value

    def decode(self, data: bytes, raw: bool = False) -> Iterable[HeaderTuple]:
        blocks = self._blocks
        self.kept = self.lead = None
        if not raw:
            blocks.clear()
            self._runs.clear()
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
        whole = type(data) is bytes  # runs are kept by their bytes
        while i < end:
            first = data[i]
            header: HeaderTuple | None = None
            if first & 0x80:
                index = first & 0x7F
                run = self._run_at(data, i, dynamic) if whole else None
                if run is not None:
                    headers.extend(run[0])
                    inflated += run[1]
                    consumed = len(run[0])  # one byte per field
                elif 0 < index <= _STATIC_COUNT:
                    header, consumed = _STATIC_TUPLES[index - 1], 1
                elif _STATIC_COUNT < index < 0x7F and index - 62 < len(dynamic):
                    entry = dynamic[index - 62]
                    header, consumed = _new_tuple(HeaderTuple, entry), 1
                else:
                    found, consumed = self._decode_indexed(mem[i:])
                    header = _unicode_if_needed(found, True)
            elif first & 0xE0 == 0x20:
                consumed = self._size_update(mem, i, headers)
                changed = True
            else:
                short = self._short_literal(data, i, first, dynamic)
                if short is None:
                    short = self._literal(mem[i:], first)
                header, consumed = short
                if first & 0x40:  # incremental indexing inserted (and may have evicted)
                    changed = True
                    self._runs.clear()
            if header:
                headers.append(header)
                inflated += len(header[0]) + len(header[1]) + _ENTRY_OVERHEAD
            if inflated > limit:
                msg = f"A header list larger than {limit} has been received"
                raise OversizedHeaderListError(msg)
            i += consumed
        self._assert_valid_table_size()
        return headers, changed

    def _size_update(self, mem: memoryview, i: int, headers: list[HeaderTuple]) -> int:
        """A dynamic table size update at ``i`` (only before the first field); its length.
        (Setting ``header_table_size`` forgets the kept blocks and runs.)"""
        if headers:
            msg = "Table size update not at the start of the block"
            raise HPACKDecodingError(msg)
        return self._update_encoding_context(mem[i:])

    def _run_at(
        self, data: bytes, i: int, dynamic: Sequence[tuple[bytes, bytes]]
    ) -> tuple[tuple[HeaderTuple, ...], int] | None:
        """The fields and size of the run of one-byte references starting at ``i`` (two or
        more), kept or decoded now; ``None`` if there is none or one is not in the table.
        A run that starts the block becomes :attr:`lead`."""
        run = _ONE_BYTE_REFS(data, i)
        if run is None:
            return None
        refs = run.group()
        found = self._runs.get(refs) or self._references(refs, dynamic)
        if not i and found is not None:
            self.lead = found[0]
        return found

    def _references(
        self, refs: bytes, dynamic: Sequence[tuple[bytes, bytes]]
    ) -> tuple[tuple[HeaderTuple, ...], int] | None:
        """The fields of a run of one-byte references and their size, kept for the next
        block with the same run; ``None`` if one is not in the table (the per-field path
        raises the error)."""
        fields: list[HeaderTuple] = []
        size = 0
        for first in refs:
            index = first & 0x7F
            if index <= _STATIC_COUNT:
                header = _STATIC_TUPLES[index - 1]
            elif index - 62 < len(dynamic):
                header = _new_tuple(HeaderTuple, dynamic[index - 62])
            else:
                return None
            fields.append(header)
            size += len(header[0]) + len(header[1]) + _ENTRY_OVERHEAD
        runs = self._runs
        if len(runs) >= _RUNS_KEPT:
            runs.clear()
        found = runs[refs] = (tuple(fields), size)
        return found

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
