"""Snapshot bodies as served: JSON encoded once per version, gzip compressed once per version.

A rebuild that changes N snapshots used to encode each one twice (to store it, then to serve
it), every time re-encoding the trust-bundle section that all N share (85 % of the bytes at
1,000 clusters). :class:`SnapshotEncoder` encodes each cluster's routing once and the shared
bundle section once per rebuild, and stamps the store-assigned version into the bytes without
re-encoding. The output is byte-identical to ``Snapshot.model_dump_json()`` (unit-tested).

The gzip form is built the same way: the shared section is deflated once per rebuild (a raw
deflate run ending in a full flush, so later bytes never refer back into it) and spliced between
each cluster's own deflated head and tail inside one gzip member; only the CRC-32 runs over
every byte. Both are built only when asked for (the stream sends routing and bundles apart;
only the REST long-poll serves whole bodies): a rebuild's content is the routing's parts and
the bundle section it shares with every other cluster. Pure: no I/O, no clock.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import TypeAdapter

from federation.model.api import Snapshot
from federation.store import ComposedJsonObject, DocumentPart, SharedText, TextSlice, join_parts

_TEXT_MAP = TypeAdapter(dict[str, str])
#: gzip member header: magic, deflate, no flags, mtime 0, no extra flags, OS unknown.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
#: zlib level: 1 compresses snapshots 4x at ~1/3 the CPU of level 6 and ~the same size.
GZIP_LEVEL = 1
_SNAPSHOT0 = '{"version":0,"routing":'
_SNAPSHOT_HEAD = b'{"version":%d,"routing":'
_ROUTING0 = '{"version":0,'
_ROUTING_HEAD = '{"version":%d,'


@dataclass(frozen=True)
class SnapshotBody:
    """One snapshot version as served: its JSON ``body`` and the same bytes ``gzipped``."""

    body: bytes
    gzipped: bytes


@dataclass(frozen=True)
class _SharedSection:
    """``,"bundles":{...},"bundle_updates":{...}}`` as shared text, bytes and raw deflate (the
    deflate built on first use: only the REST long-poll serves gzip)."""

    text: SharedText
    raw: bytes
    _deflated: list[bytes] = field(default_factory=list, compare=False, repr=False)

    @property
    def deflated(self) -> bytes:
        if not self._deflated:
            self._deflated.append(_deflate(self.raw[:-1], final=False))
        return self._deflated[0]


@dataclass(frozen=True)
class EncodedContent:
    """A snapshot's content (version 0): its routing as parts (literals and slices of texts a
    rebuild shares, see :mod:`federation.store.composed`; the first part a literal starting
    ``{"version":0,``) and the bundle section every snapshot of a rebuild shares."""

    routing: tuple[DocumentPart, ...]
    shared: _SharedSection

    @property
    def text(self) -> str:
        """``Snapshot.model_dump_json()`` of the version-0 snapshot."""
        return _SNAPSHOT0 + join_parts(self.routing) + self.shared.text.text

    def document(self, digest: str | None = None) -> ComposedJsonObject:
        """:attr:`text` as the store keeps it: the routing's own parts, the section shared."""
        section = self.shared.text
        tail = TextSlice(section, 0, len(section.text))
        return ComposedJsonObject((_SNAPSHOT0, *self.routing, tail), digest)

    def routing_bytes(self, version: int, prefix: bytes = b"", suffix: bytes = b"") -> bytes:
        """The routing JSON stamped with ``version`` (between ``prefix`` and ``suffix``), built
        in one copy: slices of ASCII shared texts are cut from their bytes, not re-encoded."""
        first = self.routing[0]
        if not isinstance(first, str) or not first.startswith(_ROUTING0):
            raise ValueError(f"routing JSON does not start with {_ROUTING0!r}")
        head = (_ROUTING_HEAD % version + first[len(_ROUTING0) :]).encode()
        chunks: list[bytes | memoryview] = [prefix, head]
        for part in self.routing[1:]:
            if isinstance(part, str):
                chunks.append(part.encode())
                continue
            raw = part.section.ascii_bytes()
            if raw is None:
                chunks.append(part.text.encode())
            else:
                chunks.append(memoryview(raw)[part.start : part.end])
        chunks.append(suffix)
        return b"".join(chunks)

    def routing_size(self, version: int) -> int:
        """``len(routing_bytes(version))`` without building it."""
        size = len(str(version)) - 1  # the parts hold version 0
        for part in self.routing:
            if isinstance(part, str):
                size += len(part) if part.isascii() else len(part.encode())
            elif part.section.ascii_bytes() is not None:
                size += part.end - part.start
            else:
                size += len(part.text.encode())
        return size


def _deflate(data: bytes, *, final: bool) -> bytes:
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush(
        zlib.Z_FINISH if final else zlib.Z_FULL_FLUSH
    )


def shared_section(text: str) -> _SharedSection:
    """The section whose text is ``text`` (``,"bundles":...}``)."""
    return _SharedSection(SharedText(text), text.encode())


def _shared(bundles: Mapping[str, str], updates: Mapping[str, str]) -> _SharedSection:
    return shared_section(
        ',"bundles":'
        + _TEXT_MAP.dump_json(dict(bundles)).decode()
        + ',"bundle_updates":'
        + _TEXT_MAP.dump_json(dict(updates)).decode()
        + "}"
    )


class SnapshotEncoder:
    """Encodes the snapshots of one rebuild; reuses the bundle section while it is unchanged."""

    def __init__(self) -> None:
        self._last: tuple[dict[str, str], dict[str, str], _SharedSection] | None = None

    def section(self, bundles: Mapping[str, str], updates: Mapping[str, str]) -> _SharedSection:
        """The bundle section of ``bundles`` and ``updates`` (the same object while equal)."""
        last = self._last
        if last is None or last[0] != bundles or last[1] != updates:
            copies = dict(bundles), dict(updates)
            last = self._last = (*copies, _shared(*copies))
        return last[2]

    def content(self, snapshot: Snapshot) -> EncodedContent:
        """The version-0 encoding of ``snapshot`` (whose version is ignored)."""
        shared = self.section(snapshot.bundles, snapshot.bundle_updates)
        routing = snapshot.routing.model_copy(update={"version": 0}).model_dump_json()
        if not routing.startswith(_ROUTING0):  # the model changed shape: fail loudly in tests
            raise ValueError(f"routing JSON does not start with {_ROUTING0!r}")
        return EncodedContent((routing,), shared)


class SectionCache:
    """The bundle sections of snapshots read back from the store, one object per distinct
    text (the few most recent), so N snapshots of one rebuild share one section here too."""

    def __init__(self, keep: int = 4) -> None:
        self._keep = keep
        self._sections: list[_SharedSection] = []

    def section(self, text: str | SharedText) -> _SharedSection:
        """The section of ``text``; a :class:`SharedText` is recognised by identity first."""
        for known in self._sections:
            if known.text is text:
                return known
        plain = text.text if isinstance(text, SharedText) else text
        for known in self._sections:
            if len(known.text.text) == len(plain) and known.text.text == plain:
                return known
        shared = text if isinstance(text, SharedText) else SharedText(text)
        section = _SharedSection(shared, plain.encode())
        self._sections = [section, *self._sections[: self._keep - 1]]
        return section


def composed_content(
    parts: tuple[DocumentPart, ...], sections: SectionCache
) -> EncodedContent | None:
    """A stored composed snapshot (version 0) as content, without joining it, when it has the
    shape :meth:`EncodedContent.document` writes: a literal head, the routing's parts, and the
    whole bundle section as its last slice (``None`` otherwise: use its text)."""
    if len(parts) < 2:
        return None
    first, last = parts[0], parts[-1]
    if not isinstance(first, str) or not first.startswith(_SNAPSHOT0 + _ROUTING0):
        return None
    if not isinstance(last, TextSlice) or (last.start, last.end) != (0, len(last.section.text)):
        return None
    if not last.section.text.startswith(',"bundles":{'):
        return None
    routing = (first[len(_SNAPSHOT0) :], *parts[1:-1])
    return EncodedContent(routing, sections.section(last.section))


def stored_content(document: str, sections: SectionCache) -> EncodedContent | None:
    """A stored version-0 snapshot's text as content without parsing it, when it has the
    canonical form this module writes (``None`` otherwise: parse and re-encode it). The bundle
    section starts at the first ``,"bundles":{`` after the routing, which routing JSON cannot
    contain (a quote inside a string is escaped; its only maps have numbers as values)."""
    if not document.startswith(_SNAPSHOT0 + _ROUTING0) or not document.endswith("}"):
        return None
    split = document.find(',"bundles":{', len(_SNAPSHOT0))
    if split < 0:
        return None
    return EncodedContent((document[len(_SNAPSHOT0) : split],), sections.section(document[split:]))


def stamp_body(content: EncodedContent, version: int) -> bytes:
    """``content`` with ``version`` (in the snapshot and its routing) as JSON."""
    return _SNAPSHOT_HEAD % version + content.routing_bytes(version) + content.shared.raw


def stamp(content: EncodedContent, version: int) -> SnapshotBody:
    """``content`` with ``version`` (in the snapshot and its routing), as JSON and gzip. The
    bundle section is deflated once per rebuild and spliced in; only the CRC reads it all."""
    head = _SNAPSHOT_HEAD % version + content.routing_bytes(version)
    shared = content.shared
    body = head + shared.raw
    crc = zlib.crc32(shared.raw, zlib.crc32(head))
    gzipped = b"".join(
        (
            _GZIP_HEADER,
            _deflate(head, final=False),
            shared.deflated,
            _deflate(b"}", final=True),
            struct.pack("<II", crc, len(body) & 0xFFFFFFFF),
        )
    )
    return SnapshotBody(body, gzipped)


def gzip_body(body: bytes) -> bytes:
    """``body`` as one gzip member (for snapshots read back from the store)."""
    deflated = _deflate(body, final=True)
    return _GZIP_HEADER + deflated + struct.pack("<II", zlib.crc32(body), len(body) & 0xFFFFFFFF)


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an ``Accept-Encoding`` header value allows ``gzip`` (``q=0`` refuses it)."""
    if not accept_encoding:
        return False
    for item in accept_encoding.split(","):
        token, _, params = item.partition(";")
        if token.strip().lower() in ("gzip", "x-gzip", "*"):
            quality = params.strip().lower().replace(" ", "")
            return not (quality.startswith("q=0") and quality.strip("q=0.") == "")
    return False
