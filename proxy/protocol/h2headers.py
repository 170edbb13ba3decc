"""Decoded HTTP/2 header blocks → request / response heads, with RFC 9113 §8.2–8.3 checks.

Structural rules (pseudo-header fields present, known, not repeated, before the regular ones)
are always checked: they are cheap and the engine relies on them. ``validate`` adds the
character and semantic rules an untrusted peer must be held to: lowercase names without
controls or spaces (§8.2.1), values without NUL/CR/LF or surrounding whitespace, no
connection-specific fields (§8.2.2), ``te`` only ``trailers``, ``:authority`` and ``host``
agreeing, CONNECT without ``:scheme``/``:path`` (§8.5), ``:protocol`` only with CONNECT
(RFC 8441). A violation raises :class:`MalformedHeaders`; the connection turns it into a
stream error of type PROTOCOL_ERROR (§8.1.1).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

Header = tuple[bytes, bytes]

_BAD_NAME = re.compile(rb"[^\x21-\x39\x3b-\x40\x5b-\x7e]")  # no CTL, SP, ':', uppercase, 8-bit
_BAD_VALUE = re.compile(rb"[\x00\r\n]|^[ \t]|[ \t]$")
CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"proxy-connection", b"keep-alive", b"transfer-encoding", b"upgrade"}
)
_GOOD_NAMES: set[bytes] = set()  # names already proven valid (bounded)
_GOOD_NAMES_LIMIT = 4096
# Whole fields already proven valid (user-agent, accept, :method GET ...: most repeat), so a
# repeat costs a set lookup instead of a regular expression (bounded; host and te excluded:
# their rules depend on other fields).
_GOOD_FIELDS: set[tuple[bytes, bytes]] = set()
_GOOD_FIELDS_LIMIT = 8192
_GOOD_FIELD_VALUE_LIMIT = 128
_REQUEST_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path", b":protocol"})


class MalformedHeaders(Exception):
    """The header block breaks RFC 9113 §8 (the message says which rule)."""


def _check_value(name: bytes, value: bytes) -> None:
    if value and _BAD_VALUE.search(value) is not None:
        raise MalformedHeaders(f"invalid characters or whitespace in the value of {name!r}")


def _check_regular(name: bytes, value: bytes) -> None:
    """RFC 9113 §8.2.1–8.2.2 for one regular field (validating leg only)."""
    if name not in _GOOD_NAMES:
        if not name or _BAD_NAME.search(name) is not None:
            raise MalformedHeaders(f"invalid header name {name!r}")
        if name in CONNECTION_SPECIFIC:
            raise MalformedHeaders(f"connection-specific header {name!r}")
        if len(_GOOD_NAMES) < _GOOD_NAMES_LIMIT and name != b"te":
            _GOOD_NAMES.add(name)
    if name == b"te" and value.lower() != b"trailers":
        raise MalformedHeaders("te header other than 'trailers'")
    if value and _BAD_VALUE.search(value) is not None:
        raise MalformedHeaders(f"invalid characters or whitespace in the value of {name!r}")


def _remember(field: tuple[bytes, bytes]) -> None:
    if len(field[1]) <= _GOOD_FIELD_VALUE_LIMIT and len(_GOOD_FIELDS) < _GOOD_FIELDS_LIMIT:
        _GOOD_FIELDS.add((field[0], field[1]))


def content_length(headers: Sequence[Header]) -> int:
    """The declared body length, ``-1`` if none; raises MalformedHeaders if invalid or
    declared twice differently (RFC 9110 §8.6)."""
    found = -1
    for name, value in headers:
        if name == b"content-length":
            if not value.isdigit() or len(value) > 18:
                raise MalformedHeaders(f"invalid content-length {value!r}")
            length = int(value)
            if found not in (-1, length):
                raise MalformedHeaders("conflicting content-length values")
            found = length
    return found


def parse_request(
    block: Sequence[Header], validate: bool
) -> tuple[bytes, bytes, bytes, bytes, list[Header]]:
    """``(method, scheme, authority, path, regular headers)``; raises MalformedHeaders."""
    pseudo: dict[bytes, bytes] = {}
    headers: list[Header] = []
    for header in block:
        name = header[0]
        if name[:1] == b":":
            if headers or name not in _REQUEST_PSEUDO or name in pseudo:
                raise MalformedHeaders(f"pseudo-header {name!r} misplaced, unknown or repeated")
            pseudo[name] = header[1]
        else:
            headers.append(header)
    if validate:
        _check_request_fields(pseudo, headers)
    method = pseudo.get(b":method")
    if method is None:
        raise MalformedHeaders("request without :method")
    authority = pseudo.get(b":authority")
    path = pseudo.get(b":path")
    if method == b"CONNECT" and b":protocol" not in pseudo:
        if authority is None:
            raise MalformedHeaders("CONNECT without :authority")
        path = path or authority
    elif not path or b":scheme" not in pseudo:
        raise MalformedHeaders("request without :scheme or a non-empty :path")
    if authority is None:
        authority = next((v for n, v in headers if n == b"host"), b"")
    return method, pseudo.get(b":scheme", b""), authority, path, headers


def _check_request_fields(pseudo: dict[bytes, bytes], headers: list[Header]) -> None:
    """The validating leg's rules beyond structure (see the module docstring)."""
    host: bytes | None = None
    good = _GOOD_FIELDS
    for field in headers:
        if field in good:
            continue
        name, value = field
        _check_regular(name, value)
        if name == b"host":
            if host is not None:
                raise MalformedHeaders("duplicate host header")
            host = value
        elif name != b"te":
            _remember(field)
    for field in pseudo.items():
        if field not in good:
            _check_value(*field)
            _remember(field)
    method = pseudo.get(b":method")
    if method == b"CONNECT":
        if b":protocol" not in pseudo and (b":scheme" in pseudo or b":path" in pseudo):
            raise MalformedHeaders("CONNECT with :scheme or :path")
    elif b":protocol" in pseudo:
        raise MalformedHeaders(":protocol without CONNECT")
    authority = pseudo.get(b":authority")
    if authority is None and host is None:
        raise MalformedHeaders("request without :authority or host")
    if authority is not None and host is not None and authority != host:
        raise MalformedHeaders(":authority and host disagree")


def parse_response(block: Sequence[Header], validate: bool) -> tuple[int, list[Header]]:
    """``(status, regular headers)`` of a response head (the regular fields are checked
    when ``validate``); raises MalformedHeaders."""
    status: bytes | None = None
    headers: list[Header] = []
    for header in block:
        name = header[0]
        if name[:1] == b":":
            if headers or name != b":status" or status is not None:
                raise MalformedHeaders(f"pseudo-header {name!r} misplaced in a response")
            status = header[1]
        else:
            headers.append(header)
            if validate and header not in _GOOD_FIELDS:
                _check_regular(name, header[1])
                if name not in (b"te", b"host"):
                    _remember(header)
    if status is None or len(status) != 3 or not status.isdigit():
        raise MalformedHeaders("response without a valid :status")
    return int(status), headers


def check_trailers(block: Sequence[Header], validate: bool) -> None:
    """Trailers carry no pseudo-header fields (§8.1); raises MalformedHeaders."""
    for name, value in block:
        if name[:1] == b":":
            raise MalformedHeaders(f"pseudo-header {name!r} in trailers")
        if validate:
            _check_regular(name, value)
