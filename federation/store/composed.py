"""Documents composed of literal text and slices of text that many documents of one write share.

A health flip at 1,000 clusters changes every cluster's routing, yet each routing is mostly the
same peer list and the same remote weights with the cluster's own entry cut out, plus the trust
bundles every snapshot carries. Storing each routing whole wrote ~190 MiB per flip. A
:class:`ComposedJsonObject` names those shared texts (:class:`SharedText`) instead of copying
them: ``put_snapshots`` stores each distinct shared text once (by SHA-256, in
``snapshot_sections``) and per snapshot only its literal parts and ``(section, start, end)``
references (a "recipe"); ``get_snapshot`` returns the join_parts text. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from federation.store.errors import InvalidDocument


class SharedText:
    """Text shared by many documents (or by one document's several slices). Build it once and
    hand the same object to every document that uses it: its digest and its UTF-8 check are
    computed once per object, not once per document."""

    __slots__ = ("_ascii", "_checked", "_digest", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._digest: str | None = None
        self._checked = False
        self._ascii: bytes | None = None

    def ascii_bytes(self) -> bytes | None:
        """The text as bytes when it is ASCII (then character offsets are byte offsets, and
        slices can be cut from these bytes without encoding again), else ``None``."""
        if self._ascii is None and self.text.isascii():
            self._ascii = self.text.encode("ascii")
        return self._ascii

    @property
    def digest(self) -> str:
        """SHA-256 (hex) of the UTF-8 text: the section's key in the store."""
        if self._digest is None:
            self._digest = hashlib.sha256(self.text.encode()).hexdigest()
        return self._digest

    def check(self, field: str) -> None:
        """Raise :class:`InvalidDocument` naming ``field`` if the text is not UTF-8 encodable."""
        if not self._checked:
            try:
                self.text.encode("utf-8")
            except UnicodeEncodeError as err:
                raise InvalidDocument(field, f"not encodable as UTF-8 ({err.reason})") from err
            self._checked = True

    def __repr__(self) -> str:
        return f"SharedText({len(self.text)} chars)"


@dataclass(frozen=True, slots=True)
class TextSlice:
    """``section.text[start:end]`` (character offsets)."""

    section: SharedText
    start: int
    end: int

    @property
    def text(self) -> str:
        return self.section.text[self.start : self.end]


DocumentPart = str | TextSlice


def join_parts(parts: Iterable[DocumentPart]) -> str:
    """The text ``parts`` stand for."""
    return "".join(part if isinstance(part, str) else part.text for part in parts)


def normalise_parts(parts: Iterable[DocumentPart]) -> tuple[DocumentPart, ...]:
    """``parts`` with empty parts dropped and adjacent literals merged (one canonical form for
    one structure, so digests over parts are stable)."""
    out: list[DocumentPart] = []
    for part in parts:
        if isinstance(part, str):
            if not part:
                continue
            if out and isinstance(out[-1], str):
                out[-1] = out[-1] + part
                continue
        elif part.end <= part.start:
            continue
        out.append(part)
    return tuple(out)


class ComposedJsonObject:
    """A JSON object given as ``parts`` (literals and :class:`TextSlice`), trusted like
    :class:`~federation.store.documents.EncodedJsonObject` (not re-parsed). ``digest`` is the
    writer's content digest, kept with the snapshot and returned by ``get_snapshot``."""

    __slots__ = ("digest", "parts")

    def __init__(self, parts: Sequence[DocumentPart], digest: str | None = None) -> None:
        self.parts = normalise_parts(parts)
        self.digest = digest

    @property
    def text(self) -> str:
        return join_parts(self.parts)

    def __repr__(self) -> str:
        return f"ComposedJsonObject({len(self.parts)} parts)"


def check_composed(value: ComposedJsonObject, field: str) -> ComposedJsonObject:
    """Refuse (:class:`InvalidDocument` naming ``field``) parts that cannot be an object's text
    or cannot be stored as UTF-8; shared texts are checked once per object."""
    parts = value.parts
    first, last = (parts[0], parts[-1]) if parts else ("", "")
    head = first if isinstance(first, str) else first.text[:1]
    tail = last if isinstance(last, str) else last.section.text[last.end - 1 : last.end]
    if not head.startswith("{") or not tail.endswith("}"):
        raise InvalidDocument(field, "a ComposedJsonObject must hold a JSON object's text")
    for part in parts:
        if isinstance(part, str):
            if not part.isascii():  # the common case costs no encoding
                SharedText(part).check(field)
        else:
            if not 0 <= part.start < part.end <= len(part.section.text):
                raise InvalidDocument(field, f"slice {part.start}:{part.end} is out of range")
            part.section.check(field)
    if value.digest is not None and not isinstance(value.digest, str):
        raise InvalidDocument(field, "a ComposedJsonObject's digest must be text")
    return value


def recipe(value: ComposedJsonObject) -> tuple[str, list[SharedText]]:
    """``(recipe JSON, sections in the order it numbers them)``: the recipe is a JSON array of
    literal strings and ``[section index, start, end]`` triples."""
    sections: list[SharedText] = []
    index: dict[int, int] = {}
    items: list[object] = []
    for part in value.parts:
        if isinstance(part, str):
            items.append(part)
            continue
        i = index.get(id(part.section))
        if i is None:
            i = index[id(part.section)] = len(sections)
            sections.append(part.section)
        items.append([i, part.start, part.end])
    return json.dumps(items, separators=(",", ":"), ensure_ascii=False), sections


def from_recipe(text: str, bodies: Sequence[str]) -> str:
    """The document a :func:`recipe` stands for, given its sections' texts in order."""
    out = []
    for item in json.loads(text):
        if isinstance(item, str):
            out.append(item)
        else:
            i, start, end = item
            out.append(bodies[i][start:end])
    return "".join(out)
