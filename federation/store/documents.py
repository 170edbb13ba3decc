"""Validation of the JSON documents and scalar arguments handed to a store.

Corrupt or non-object JSON must never reach the database: every backend calls these before it
opens a transaction, so a refused write stores nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from federation.store.errors import InvalidDocument


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class EncodedJsonObject(str):
    """Text a JSON encoder just produced for an object (e.g. pydantic's ``model_dump_json``):
    stored verbatim WITHOUT being parsed again (a 1.5 MiB snapshot costs ~10 ms to re-parse).
    The caller vouches for it; anything else must be passed as a plain ``str`` or a mapping."""

    __slots__ = ()


class SplitJsonObject:
    """A JSON object given as ``head + tail``, trusted like :class:`EncodedJsonObject`, whose
    ``tail`` many documents of one write share (the snapshots' trust-bundle section, 85 % of
    each snapshot at 1,000 clusters): ``put_snapshots`` stores each distinct tail once and
    ``get_snapshot`` returns ``head + tail``. Equal tails must be the same text."""

    __slots__ = ("head", "tail")

    def __init__(self, head: str, tail: str) -> None:
        self.head = head
        self.tail = tail

    def __repr__(self) -> str:
        return f"SplitJsonObject({len(self.head)} + {len(self.tail)} chars)"


def split_document(value: object, field: str) -> SplitJsonObject | str:
    """:func:`document_text`, but a :class:`SplitJsonObject` is kept split (checked for being
    an object's two halves, encodable as UTF-8, not re-parsed)."""
    if not isinstance(value, SplitJsonObject):
        return document_text(value, field)
    if not value.head.startswith("{") or not value.tail.endswith("}"):
        raise InvalidDocument(field, "a SplitJsonObject must hold the two halves of an object")
    _encodable(value.head, field)
    _encodable(value.tail, field)
    return value


def document_text(value: object, field: str) -> str:
    """The JSON text to store for ``value``: a ``str`` holding a JSON object (kept verbatim),
    an :class:`EncodedJsonObject` (kept verbatim, not re-parsed) or a mapping (serialised
    compactly). Raises :class:`InvalidDocument` naming ``field``."""
    if isinstance(value, EncodedJsonObject):
        if not value.startswith("{"):
            raise InvalidDocument(field, "an EncodedJsonObject must hold a JSON object")
        return _encodable(str(value), field)
    if isinstance(value, str):
        try:
            parsed = json.loads(value, parse_constant=_refuse_constant)
        except ValueError as err:
            raise InvalidDocument(field, f"not valid JSON ({err})") from err
        if not isinstance(parsed, dict):
            raise InvalidDocument(field, f"expected a JSON object, got {type(parsed).__name__}")
        return _encodable(value, field)
    if isinstance(value, Mapping):
        try:
            return json.dumps(dict(value), separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as err:
            raise InvalidDocument(field, f"cannot be serialised as JSON ({err})") from err
    raise InvalidDocument(
        field, f"expected a JSON object (str or mapping), got {type(value).__name__}"
    )


def _encodable(value: str, field: str) -> str:
    # Lone surrogates survive json.loads but cannot be stored as UTF-8 by either database.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InvalidDocument(field, f"not encodable as UTF-8 ({err.reason})") from err
    return value


def require_name(value: object, field: str) -> str:
    """A non-empty string without NUL or whitespace-only content (names, ids, topics)."""
    if not isinstance(value, str) or not value.strip() or "\x00" in value or len(value) > 512:
        raise InvalidDocument(field, f"expected a non-empty name, got {value!r}")
    return _encodable(value, field)


def require_time(value: object, field: str) -> float:
    """A finite number of seconds since the epoch."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidDocument(field, f"expected a finite timestamp in seconds, got {value!r}")
    return float(value)


def require_count(value: object, field: str) -> int:
    """A non-negative integer (sequences, versions, ids, limits)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidDocument(field, f"expected a non-negative integer, got {value!r}")
    if value >= 2**63:
        raise InvalidDocument(field, f"{value} does not fit a 64-bit integer")
    return value


def require_text(value: object, field: str) -> str:
    """Free text (an event subject, a NACK error, a JWS): a string without NUL characters."""
    if not isinstance(value, str) or "\x00" in value:
        raise InvalidDocument(field, f"expected text without NUL characters, got {value!r:.80}")
    return _encodable(value, field)


def optional_text(value: object, field: str) -> str | None:
    """``None`` or :func:`require_text`."""
    return None if value is None else require_text(value, field)
