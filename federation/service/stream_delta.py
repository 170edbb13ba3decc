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


def _elements(inside: bytes, separator: bytes) -> list[bytes]:
    if not inside:
        return []
    pieces = inside.split(separator)
    head, tail = separator[:1], separator[2:]
    last = len(pieces) - 1
    return [
        (tail if i else b"") + piece + (head if i < last else b"") for i, piece in enumerate(pieces)
    ]


def _entries(base: list[bytes], new: list[bytes]) -> bytes:
    index = {element: i for i, element in enumerate(base)}
    out: list[bytes] = []
    run: list[int] | None = None
    for element in new:
        i = index.get(element)
        if i is not None and run is not None and run[1] == i:
            run[1] = i + 1
            continue
        if run is not None:
            out.append(b"[%d,%d]" % (run[0], run[1]))
            run = None
        if i is not None:
            run = [i, i + 1]
        else:
            out.append(element)
    if run is not None:
        out.append(b"[%d,%d]" % (run[0], run[1]))
    return b"[" + b",".join(out) + b"]"


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
            split = _SPLIT[name]
            old_items = _elements(base[old[0] : old[1]], split)
            entries = _entries(old_items, _elements(new[now[0] : now[1]], split))
            out.append(b',"%s":%s' % (name, entries))
    return b"".join(out) + b"}"
