"""HTTP/1.1 client wire format (RFC 9112), sans-IO: request heads out, response heads and
bodies in. Replaces h11 on the proxy's hot path with the same checks h11 makes:

- request: method and header names are tokens, the target has no space or control byte,
  header values have no control byte and no surrounding whitespace, ``content-length`` is
  digits (duplicates must agree), ``transfer-encoding`` only ``chunked``;
- response: ``HTTP/x.y NNN reason``, ``name: value`` lines (obsolete folding joined), a head
  of at most 16 KiB, the same ``content-length``/``transfer-encoding`` rules; framing by
  RFC 9112 §6.3 (204/304/HEAD: none, chunked beats length, else until close).

Violations raise :class:`WireError` (the connection is then unusable).
"""

from __future__ import annotations

import re

MAX_HEAD = 16 * 1024
Headers = list[tuple[bytes, bytes]]

_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_TARGET = re.compile(rb"[\x21-\x7e]+")
_VALUE = re.compile(rb"([^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?")
_DIGITS = re.compile(rb"[0-9]+")
_BLANK_LINE = re.compile(rb"\n\r?\n")
_LINE_END = re.compile(rb"\r?\n")
_STATUS = re.compile(rb"HTTP/([0-9]\.[0-9]) ([0-9]{3})(?: ([ \t\x21-\x7e\x80-\xff]*))?")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?")
# A response's field section checked by one regex (the per-line checks are the fallback that
# unfolds obsolete folding and names the offending line).
_TOKEN_CHARS = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_VALUE_CHARS = rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?"
_THEIR_FIELD = rb"(" + _TOKEN_CHARS + rb"):[ \t]*(" + _VALUE_CHARS + rb")[ \t]*\r?\n"
_THEIR_FIELDS = re.compile(rb"(?:" + _THEIR_FIELD + rb")*")
_THEIR_FIELD_RE = re.compile(_THEIR_FIELD)
_FRAMING_NAMES = frozenset({b"content-length", b"transfer-encoding"})


class WireError(Exception):
    """The message (ours or the backend's) breaks HTTP/1.1 framing rules."""


def _framing_headers(headers: Headers) -> tuple[int | None, bool]:
    """``(content_length, chunked)`` after h11's checks on those two headers."""
    length: bytes | None = None
    chunked = False
    for name, value in headers:
        if name == b"content-length":
            if value.isdigit() and len(value) <= 20:  # the common case: one ASCII number
                one = value
            else:
                values = {v.strip() for v in value.split(b",")}
                if len(values) != 1:
                    raise WireError("conflicting Content-Length headers")
                one = values.pop()
                if not _DIGITS.fullmatch(one) or len(one) > 20:
                    raise WireError("bad Content-Length")
            if length is not None and length != one:
                raise WireError("conflicting Content-Length headers")
            length = one
        elif name == b"transfer-encoding":
            if chunked:
                raise WireError("multiple Transfer-Encoding headers")
            if value.lower() != b"chunked":
                raise WireError("Only Transfer-Encoding: chunked is supported")
            chunked = True
    return (None if length is None else int(length)), chunked


def request_head(method: bytes, target: bytes, headers: Headers) -> tuple[bytes, int | None]:
    """The serialized head and the body framing: ``None`` = chunked, else the length
    (0 when neither header is present)."""
    head, length, _ = _serialize(method, target, headers, None, False)
    return head, length


def request_head_for(
    method: bytes, target: bytes, headers: Headers, authority: bytes, has_body: bool
) -> tuple[bytes, int | None, bool]:
    """The head a client connection sends for ``headers``: :func:`request_head` of
    ``headers`` with a ``host: authority`` field first when they have no ``host``, and
    ``transfer-encoding: chunked`` last when ``has_body`` and neither ``content-length``
    nor ``transfer-encoding`` is given; plus whether ``headers`` ask for ``connection:
    close``. One pass over the fields (same bytes, checks and errors as building the
    completed list and calling ``request_head``)."""
    return _serialize(method, target, headers, authority, has_body)


_CHUNKED = (b"transfer-encoding", b"chunked")


def _check_start(method: bytes, target: bytes) -> None:
    if method not in _VALID_METHODS:
        if not _TOKEN.fullmatch(method):
            raise WireError(f"Illegal method {method!r}")
        if len(_VALID_METHODS) < _VALID_METHODS_LIMIT:
            _VALID_METHODS.add(method)
    if not _TARGET.fullmatch(target):
        raise WireError(f"Illegal target characters {target!r}")


def _serialize(
    method: bytes, target: bytes, headers: Headers, authority: bytes | None, has_body: bool
) -> tuple[bytes, int | None, bool]:
    """:func:`request_head_for`; with ``authority`` ``None`` no ``host`` is added
    (:func:`request_head`)."""
    _check_start(method, target)
    host = present = connection = False
    framing: Headers | None = None
    try:
        for field in headers:
            if field not in _VALID_FIELDS:
                _check_field(field)
            name = field[0]
            size = len(name)
            if size == 4:
                host = host or name == b"host"
            elif size == 10:
                connection = connection or name == b"connection"
            elif size in (14, 17) and name.lower() in _FRAMING_NAMES:
                present = present or name in _FRAMING_NAMES
                framing = framing or []
                framing.append((name.lower(), field[1]))
    except WireError:
        # the host field we add comes first: its error is the one to report
        if authority is not None and all(name != b"host" for name, _ in headers):
            _check_field((b"host", authority))
        raise
    host_line = b""
    if authority is not None and not host:
        if (b"host", authority) not in _VALID_FIELDS:
            _check_field((b"host", authority))
        host_line = b"host: %b\r\n" % authority
    chunk = has_body and not present
    if chunk:
        framing = [*framing, _CHUNKED] if framing else [_CHUNKED]
    length, chunked = _framing_headers(framing) if framing else (None, False)
    # "name: value" lines, by C-level joins (a Python loop cost ~0.2 µs more)
    fields = b"\r\n".join(map(b": ".join, headers)) + b"\r\n" if headers else b""
    head = b"%b %b HTTP/1.1\r\n%b%b%b\r\n" % (
        method,
        target,
        host_line,
        fields,
        b"transfer-encoding: chunked\r\n" if chunk else b"",
    )
    return head, (None if chunked else (length or 0)), connection and wants_close(headers)


# Fields already checked: most repeat on every request (user-agent, accept, x-forwarded-*).
# Bounded; values that differ on every request are not kept.
_VALID_FIELDS: set[tuple[bytes, bytes]] = set()
_VALID_LIMIT = 4096
_VALID_NAMES: set[bytes] = set()
_VALID_METHODS: set[bytes] = set()
_VALID_METHODS_LIMIT = 64
_UNIQUE_PER_REQUEST = frozenset({b"traceparent", b"tracestate", b"x-request-id"})
_VISIBLE = bytes(range(0x21, 0x7F))


def _check_field(field: tuple[bytes, bytes]) -> None:
    name, value = field
    if name not in _VALID_NAMES:  # traceparent's value differs per request, its name not
        if not _TOKEN.fullmatch(name):
            raise WireError(f"Illegal header name {name!r}")
        if len(_VALID_NAMES) < _VALID_LIMIT:
            _VALID_NAMES.add(name)
    # Visible ASCII only (a trace id, say) is a valid value: one C-level pass instead of
    # the regex (0.16 vs 0.54 µs), for the values that differ per request.
    if value.translate(None, _VISIBLE) and not _VALUE.fullmatch(value):
        raise WireError(f"Illegal header value {value!r}")
    if len(_VALID_FIELDS) < _VALID_LIMIT and name not in _UNIQUE_PER_REQUEST:
        _VALID_FIELDS.add(field)


def wants_close(headers: Headers) -> bool:
    """``connection: close`` among the (lowercase-named) headers."""
    for name, value in headers:
        if name == b"connection" and b"close" in [t.strip().lower() for t in value.split(b",")]:
            return True
    return False


def parse_response_head(buffer: bytearray) -> tuple[bytes, int, Headers, int] | None:
    """``(http_version, status, headers, head_length)`` once ``buffer`` holds a whole head,
    else ``None``. Header names come back lowercase."""
    match = _BLANK_LINE.search(buffer)
    if match is None:
        if len(buffer) > MAX_HEAD:
            raise WireError("response head too long")
        return None
    end = match.end()
    if end > MAX_HEAD:
        raise WireError("response head too long")
    head = bytes(buffer[: match.start()])
    known = _SEEN_HEADS.get(head)
    if known is not None:  # a backend sends the same head again and again
        return known[0], known[1], list(known[2]), end
    parsed = _parse_head(head)
    if len(head) <= _SEEN_HEAD_SIZE:
        if len(_SEEN_HEADS) >= _SEEN_HEADS_LIMIT:
            _SEEN_HEADS.clear()
        _SEEN_HEADS[head] = (parsed[0], parsed[1], tuple(parsed[2]))
    return parsed[0], parsed[1], parsed[2], end


_SEEN_HEADS: dict[bytes, tuple[bytes, int, tuple[tuple[bytes, bytes], ...]]] = {}
_SEEN_HEADS_LIMIT = 256
_SEEN_HEAD_SIZE = 1024


ResponseHead = tuple[int, Headers, int, int | bool | None, bool]
_Final = tuple[int, tuple[tuple[bytes, bytes], ...], int | bool | None, bool]
# Final response heads (not 1xx) seen before, by their bytes: status, headers, the framing
# for a method other than HEAD, and whether the connection closes after them whatever the
# framing. A head whose framing headers are invalid is not kept (it fails every time).
_SEEN_FINAL: dict[bytes, _Final] = {}


def parse_response(buffer: bytearray, method: bytes) -> ResponseHead | None:
    """``(status, headers, head_length, remaining, closes)`` once ``buffer`` holds a whole
    head, else ``None``: :func:`parse_response_head`, then for a final response (status >=
    200) ``remaining`` = :func:`response_framing` for ``method`` and ``closes`` = the
    connection cannot be kept alive after it (HTTP/1.0, ``connection: close``, or a body
    read until the connection closes). For a 1xx, ``remaining`` is 0 and ``closes`` False.
    A head seen before costs one dict lookup."""
    match = _BLANK_LINE.search(buffer)
    if match is None:
        parse_response_head(buffer)  # raises if the partial head is already too long
        return None
    head = bytes(buffer[: match.start()])
    known = _SEEN_FINAL.get(head)
    if known is not None:
        status, fields, framing, closes = known
        remaining = 0 if method == b"HEAD" or status in (204, 304) else framing
        return status, list(fields), match.end(), remaining, closes or remaining is True
    parsed = parse_response_head(buffer)
    assert parsed is not None  # a whole head is buffered
    version, status, headers, consumed = parsed
    if status < 200:
        return status, headers, consumed, 0, False
    remaining = response_framing(method, status, headers)
    closes = version < b"1.1" or wants_close(headers)
    if consumed <= _SEEN_HEAD_SIZE:
        _remember_final(head, status, headers, closes)
    return status, headers, consumed, remaining, closes or remaining is True


def _remember_final(head: bytes, status: int, headers: Headers, closes: bool) -> None:
    try:
        framing = response_framing(b"GET", status, headers)
    except WireError:  # a HEAD's answer may carry framing headers no body could follow
        return
    if len(_SEEN_FINAL) >= _SEEN_HEADS_LIMIT:
        _SEEN_FINAL.clear()
    _SEEN_FINAL[head] = (status, tuple(headers), framing, closes)


def _parse_head(head: bytes) -> tuple[bytes, int, Headers]:
    """``(http_version, status, headers)`` of a head without its blank line."""
    if head.endswith(b"\r"):
        head = head[:-1]
    first = head.find(b"\n")
    status_line = head if first < 0 else head[:first]
    if status_line.endswith(b"\r"):
        status_line = status_line[:-1]
    status = _STATUS.fullmatch(status_line)
    if status is None:
        raise WireError(f"illegal status line {status_line[:80]!r}")
    version, code = status.group(1), int(status.group(2))
    if first < 0:
        return version, code, []
    block = head[first + 1 :] + b"\n"
    if _THEIR_FIELDS.fullmatch(block):  # the common case: no folding, nothing illegal
        return version, code, [(n.lower(), v) for n, v in _THEIR_FIELD_RE.findall(block)]
    return version, code, _parse_fields(_LINE_END.split(head)[1:])


def _parse_fields(lines: list[bytes]) -> Headers:
    """Field lines one by one: obsolete folding joined, the first illegal line named."""
    headers: Headers = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):  # obsolete line folding
            if not headers:
                raise WireError("continuation line at start of headers")
            name, value = headers[-1]
            headers[-1] = (name, value + b" " + line.strip(b" \t"))
            continue
        name, sep, value = line.partition(b":")
        value = value.strip(b" \t")
        if not sep or not _TOKEN.fullmatch(name) or not _VALUE.fullmatch(value):
            raise WireError(f"illegal header line {line[:80]!r}")
        headers.append((name.lower(), value))
    return headers


def response_framing(method: bytes, status: int, headers: Headers) -> int | bool | None:
    """Body framing of a final response: the length (0: no body), ``None`` = chunked,
    ``True`` = until the connection closes."""
    if status in (204, 304) or method == b"HEAD":
        return 0
    length, chunked = _framing_headers(headers)
    if chunked:
        return None
    if length is not None:
        return length
    return True


def parse_chunk_size(buffer: bytearray) -> tuple[int, int] | None:
    """``(size, line_length)`` of a chunk-size line at the start of ``buffer``."""
    end = buffer.find(b"\n")
    if end < 0:
        if len(buffer) > 1024:
            raise WireError("chunk size line too long")
        return None
    match = _CHUNK_SIZE.fullmatch(bytes(buffer[:end]).rstrip(b"\r"))
    if match is None:
        raise WireError("illegal chunk header")
    return int(match.group(1), 16), end + 1
