"""Routing deltas cut from served routing bytes, without parsing them (the federation's side).

:mod:`federation.model.routing_delta` defines the delta a ``delta`` stream message carries and
how a gateway applies it. Parsing two 23 KiB routings per cluster per flip to diff them cost
more server CPU than sending the whole routing; this module diffs the canonical bytes instead.
A served routing is ``RoutingModel.model_dump_json()``::

    {"version":V,<head>,"peers":[{"cluster":...},...],"services":[{"name":...},...]}

Peers are split at ``},{"cluster":"`` and services at ``},{"name":"``: inside a string a quote
is escaped, and every other object in a routing either has another first key or only numbers as
values, so these bytes occur only between two elements. Elements are compared as bytes. Bodies
of another shape, or whose head changed, get no delta (the full routing is sent). Pure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from federation.store import DocumentPart, TextSlice

_VERSION = re.compile(rb'\{"version":[0-9]+')
_PEERS = b',"peers":['
_SERVICES = b'],"services":['
_TAIL = b"]}"
_SPLIT = {b"peers": b'},{"cluster":"', b"services": b'},{"name":"'}


Span = tuple[int, int]


def _spans(routing: bytes, start: int, end: int) -> tuple[Span, Span, Span] | None:
    """Where ``(head, peers, services)`` are in the routing ``routing[start:end]``: the bytes
    between the version and the peer list, and the insides of the two lists; ``None`` for
    another shape. Offsets only: a routing at 1,000 clusters is ~230 KiB, and slicing it
    (twice per cluster per flip) cost more than the diff itself."""
    match = _VERSION.match(routing, start, end)
    if match is None or not routing.endswith(_TAIL, start, end):
        return None
    peers_at = routing.find(_PEERS, match.end(), end)
    if peers_at < 0:
        return None
    # from the end: the peer list before it is N entries long, the services key is the last
    services_at = routing.rfind(_SERVICES, peers_at, end)
    if services_at < 0:
        return None
    return (
        (match.end(), peers_at),
        (peers_at + len(_PEERS), services_at),
        (services_at + len(_SERVICES), end - len(_TAIL)),
    )


def _same(a: bytes, a_span: Span, b: bytes, b_span: Span) -> bool:
    """``a[a_span] == b[b_span]`` without copying either (one ``memcmp``)."""
    size = a_span[1] - a_span[0]
    if size != b_span[1] - b_span[0]:
        return False
    return b.startswith(memoryview(a)[a_span[0] : a_span[1]], b_span[0])


def _common_prefix(a: bytes, b: bytes) -> int:
    """How many leading bytes ``a`` and ``b`` share (binary search, ``memcmp`` per step)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:  # at most log2(len) turns; the slices copied add up to at most len(b)
        mid = (lo + hi + 1) // 2
        if a.startswith(b[lo:mid], lo):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: bytes, b: bytes, limit: int) -> int:
    """How many trailing bytes (at most ``limit``) ``a`` and ``b`` share."""
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a.endswith(b[len(b) - mid : len(b) - lo], 0, len(a) - lo):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _bodies(framed: bytes, start: int, end: int, separator: bytes) -> list[bytes]:
    return framed[start:end].split(separator) if end > start else []


#: Lists of up to this many elements are split whole (a routing's services): binary searches
#: for their shared ends and hashing each element (~11 KiB at 1,000 clusters) cost more.
_FEW = 8


def _at_most(wrap: bytes, separator: bytes, count: int) -> bool:
    """Whether ``wrap`` holds at most ``count`` separators (scans no further)."""
    at = 0
    for _ in range(count + 1):
        at = wrap.find(separator, at)
        if at < 0:
            return True
        at += len(separator)
    return False


def _list_entries(old: bytes, new: bytes, separator: bytes) -> bytes:
    """The delta entries of two list insides (runs ``[i,j]`` of the old list's elements, new
    elements literally), splitting only what lies between the elements
    they share at the start and at the end (a join inserts one peer into every cluster's peer
    list: two binary searches find the rest). Same delta, up to how runs are cut."""
    # framed, every element body sits between two separators: sep b1 sep b2 ... sep
    wrap_old = separator[:2] + old + separator[1:] if old else separator
    wrap_new = separator[:2] + new + separator[1:] if new else separator
    if _at_most(wrap_old, separator, _FEW + 1):  # a few elements: compare them all
        base = wrap_old.split(separator)[1:-1]
        news = wrap_new.split(separator)[1:-1]
        return _runs(base, news, 0, len(base), separator)
    head = wrap_old.rfind(separator, 0, _common_prefix(wrap_old, wrap_new))
    limit = min(len(wrap_old), len(wrap_new)) - head
    tail = wrap_old.find(separator, len(wrap_old) - _common_suffix(wrap_old, wrap_new, limit))
    shift = len(wrap_new) - len(wrap_old)
    base = _bodies(wrap_old, head + len(separator), tail, separator)
    news = _bodies(wrap_new, head + len(separator), tail + shift, separator)
    before = wrap_old.count(separator, 0, head)  # elements shared at the start
    total = before + len(base) + wrap_old.count(separator, tail) - 1
    return _runs(base, news, before, total, separator)


def _runs(base: list[bytes], news: list[bytes], before: int, total: int, separator: bytes) -> bytes:
    """The entries for old elements ``base`` (indices from ``before``) replaced by ``news``,
    the ``before`` elements ahead and those after ``base`` up to ``total`` kept."""
    suffix_at = before + len(base)  # the first one shared at the end
    if len(base) <= _FEW:  # compared as bytes, length first: no hashing of large elements
        sized = [(len(body), body) for body in base]

        def find(body: bytes) -> int | None:
            size = len(body)
            for i in range(len(sized) - 1, -1, -1):
                if sized[i][0] == size and sized[i][1] == body:
                    return before + i
            return None
    else:
        index = {body: before + i for i, body in enumerate(base)}

        def find(body: bytes) -> int | None:
            return index.get(body)

    runs: list[list[int] | bytes] = [[0, before]] if before else []
    for body in news:
        i = find(body)
        last = runs[-1] if runs else None
        if i is None:
            runs.append(b"%s%s%s" % (separator[2:], body, separator[:1]))
        elif isinstance(last, list) and last[1] == i:
            last[1] = i + 1
        else:
            runs.append([i, i + 1])
    if suffix_at < total:
        last = runs[-1] if runs else None
        if isinstance(last, list) and last[1] == suffix_at:
            last[1] = total
        else:
            runs.append([suffix_at, total])
    return (
        b"["
        + b",".join(b"[%d,%d]" % (run[0], run[1]) if isinstance(run, list) else run for run in runs)
        + b"]"
    )


def routing_delta_bytes(base: bytes, new: bytes, version: int) -> bytes | None:
    """The delta (JSON) from served routing ``base`` to served routing ``new`` of ``version``,
    or ``None`` when either is not in the canonical shape or the head fields changed."""
    return routing_delta_within(base, (0, len(base)), new, (0, len(new)), version)


def routing_delta_within(
    base: bytes, base_at: Span, new: bytes, new_at: Span, version: int
) -> bytes | None:
    """:func:`routing_delta_bytes` of the routings at ``base[base_at]`` and ``new[new_at]``
    (inside whole stream messages: nothing is copied but the lists that changed)."""
    old_spans, new_spans = _spans(base, *base_at), _spans(new, *new_at)
    if old_spans is None or new_spans is None:
        return None
    if not _same(base, old_spans[0], new, new_spans[0]):
        return None
    out = [b'{"version":%d' % version]
    for name, old, now in zip((b"peers", b"services"), old_spans[1:], new_spans[1:], strict=True):
        if not _same(base, old, new, now):
            entries = _list_entries(base[old[0] : old[1]], new[now[0] : now[1]], _SPLIT[name])
            out.append(b',"%s":%s' % (name, entries))
    return b"".join(out) + b"}"


_SERVICES_KEY = '],"services":['
_VERSION0 = '{"version":0,'
_PEERS_KEY = ',"peers":['


def _services_split(
    parts: Sequence[DocumentPart],
) -> tuple[int, str, str] | None:
    """``(index, before, after)``: the last literal holding the services key, cut around it
    (the routing's head and peers lie before it, its services list after it)."""
    for index in range(len(parts) - 1, -1, -1):
        part = parts[index]
        if isinstance(part, str):
            at = part.rfind(_SERVICES_KEY)
            if at >= 0:
                return index, part[:at], part[at + len(_SERVICES_KEY) :]
    return None


def _same_part(a: DocumentPart, b: DocumentPart) -> bool:
    """Equal literals, or slices of the very same shared text at the same offsets."""
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return a.section is b.section and a.start == b.start and a.end == b.end


def _services_bytes(parts: Sequence[DocumentPart], after: str) -> bytes | None:
    chunks: list[bytes | memoryview] = [after.encode()]
    for part in parts:
        raw = part.section.ascii_bytes() if isinstance(part, TextSlice) else None
        if raw is not None and isinstance(part, TextSlice):
            chunks.append(memoryview(raw)[part.start : part.end])
        else:
            chunks.append((part if isinstance(part, str) else part.text).encode())
    joined = b"".join(chunks)
    return joined[: -len(_TAIL)] if joined.endswith(_TAIL) else None


def routing_delta_of_parts(
    base: Sequence[DocumentPart], new: Sequence[DocumentPart], version: int
) -> bytes | None:
    """:func:`routing_delta_bytes` of two routings given as parts (version 0, as a rebuild
    plans them), without joining them, when their heads and peer lists are the same parts
    (equal literals, slices of one shared text at the same offsets: a health flip keeps the
    rebuild's peer list); ``None`` otherwise (then cut it from the bytes). Only the services
    lists are joined and compared (~13 KiB at 1,000 clusters, not the 230 KiB routing)."""
    old_at, new_at = _services_split(base), _services_split(new)
    if old_at is None or new_at is None or old_at[0] != new_at[0] or old_at[1] != new_at[1]:
        return None
    head = old_at[0]
    if not all(_same_part(a, b) for a, b in zip(base[:head], new[:head], strict=True)):
        return None
    first = base[0] if head else old_at[1]
    if not (isinstance(first, str) and first.startswith(_VERSION0) and _PEERS_KEY in first):
        return None
    old = _services_bytes(base[head + 1 :], old_at[2])
    now = _services_bytes(new[head + 1 :], new_at[2])
    if old is None or now is None:
        return None
    out = b'{"version":%d' % version
    if old != now:
        out += b',"services":%s' % _list_entries(old, now, _SPLIT[b"services"])
    return out + b"}"
