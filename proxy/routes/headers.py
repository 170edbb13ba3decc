"""Header hygiene on both legs, W3C trace context, and the gateway's own local replies.

Headers are ``list[tuple[bytes, bytes]]`` with lowercase names (as h2 and h11 give them);
pseudo-headers (``:method`` ...) pass through untouched. Every function returns a new list and
never mutates its input. Pure: randomness only from the injected ``random.Random``.
"""

from __future__ import annotations

import random
import re

Headers = list[tuple[bytes, bytes]]

HOP_BY_HOP: frozenset[bytes] = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
        b"te",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"trailer",
    }
)
ISTHMUS_PREFIX = b"x-isthmus-"
SOURCE_CLUSTER = b"x-isthmus-source-cluster"
SOURCE_IDENTITY = b"x-isthmus-source-identity"
REASON = b"x-isthmus-reason"
TRACEPARENT = b"traceparent"
TRACESTATE = b"tracestate"
_XFF = b"x-forwarded-for"
_XFP = b"x-forwarded-proto"
_TRACEPARENT_RE = re.compile(
    rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[\x21-\x7e]*)?"
)
_ZERO_TRACE = b"0" * 32
_TRACEPARENT_00 = re.compile(rb"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_ZERO_SPAN = b"0" * 16
_SPAN_MASK = (1 << 64) - 1


_NOTHING: frozenset[bytes] = frozenset()


def _listed_in_connection(headers: Headers) -> frozenset[bytes]:
    names: set[bytes] | None = None
    for name, value in headers:
        if name == b"connection":
            names = names or set()
            names.update(token.strip().lower() for token in value.split(b","))
    if not names:
        return _NOTHING
    names.discard(b"")
    return frozenset(names)


def _is_hop(name: bytes, value: bytes, listed: frozenset[bytes], keep_te_trailers: bool) -> bool:
    if name in HOP_BY_HOP:
        return not (keep_te_trailers and name == b"te" and value.strip().lower() == b"trailers")
    return name in listed


def strip_hop_by_hop(headers: Headers, *, keep_te_trailers: bool = False) -> Headers:
    """Drop hop-by-hop headers and every header named in ``connection``.

    ``keep_te_trailers`` keeps ``te: trailers`` (the only ``te`` HTTP/2 allows, needed by gRPC).
    """
    listed = _listed_in_connection(headers)
    return [(n, v) for n, v in headers if not _is_hop(n, v, listed, keep_te_trailers)]


def clean_response(headers: Headers) -> Headers:
    """Response hygiene: hop-by-hop headers never cross the gateway (every response)."""
    out: Headers = []
    for item in headers:
        name = item[0]
        if name in HOP_BY_HOP:
            if name == b"connection":
                return strip_hop_by_hop(headers)  # names listed in it go too: the slow path
            continue
        out.append(item)
    return out


def parse_traceparent(value: bytes) -> tuple[bytes, bytes, bytes] | None:
    """``(trace_id, parent_id, flags)`` of a valid W3C ``traceparent``, else ``None``.

    Version ``ff``, all-zero IDs, uppercase hex and a version-00 value with extra fields are
    invalid; a higher version may carry extra ``-``-separated fields (forward compatibility).
    """
    if _TRACEPARENT_00.fullmatch(value):  # the common case, without groups and checks
        trace_id, parent_id = value[3:35], value[36:52]
        if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
            return None
        return trace_id, parent_id, value[53:]
    match = _TRACEPARENT_RE.fullmatch(value)
    if match is None:
        return None
    version, trace_id, parent_id, flags, extra = match.groups()
    if version == b"ff" or (version == b"00" and extra is not None):
        return None
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return trace_id, parent_id, flags


def _child_trace(values: list[bytes], rng: random.Random) -> tuple[bytes, bool]:
    """A traceparent for our hop: child of the caller's if exactly one valid one came in."""
    if len(values) == 1:
        value = values[0]
        if (  # parse_traceparent's common case, inline: a version-00 value of ours
            _TRACEPARENT_00.fullmatch(value)
            and value[3:35] != _ZERO_TRACE
            and value[36:52] != _ZERO_SPAN
        ):  # "00-<trace id>-" our span id "-<flags>"
            return b"%b%016x%b" % (value[:36], rng.getrandbits(64) or 1, value[52:]), True
    parsed = parse_traceparent(values[0]) if len(values) == 1 else None
    if parsed is None:
        # one draw for both IDs; an all-zero ID (p = 2^-64) is replaced, the spec forbids it
        ids = rng.getrandbits(192)
        return b"00-%032x-%016x-01" % ((ids >> 64) or 1, (ids & _SPAN_MASK) or 1), False
    trace_id, _, flags = parsed
    return b"00-%b-%016x-%b" % (trace_id, rng.getrandbits(64) or 1, flags), True


_COLLECTED = frozenset({TRACEPARENT, TRACESTATE, _XFF})
_SPECIAL_LOCAL = HOP_BY_HOP | _COLLECTED | {_XFP}
_SPECIAL_PEER = HOP_BY_HOP | _COLLECTED | {SOURCE_CLUSTER, SOURCE_IDENTITY}
_HOST = frozenset({b"host"})


def _rewrite(
    headers: Headers,
    rng: random.Random,
    special: frozenset[bytes],
    drop_isthmus: bool,
    listed: frozenset[bytes] | None = None,
) -> tuple[Headers, list[bytes], bytes]:
    """One pass: drop hop-by-hop and other ``special`` names, collect trace and XFF headers;
    the headers kept with our ``traceparent`` appended, the XFF values, our traceparent.

    Runs per request: an ordinary header costs one set lookup and a prefix test. ``listed``
    (names in ``connection``) is ``None`` until a ``connection`` header is met; the pass then
    starts over with those names dropped too (rare: HTTP/2 forbids ``connection``).
    """
    if listed:
        special = special | listed
    out: Headers = []
    traces: list[bytes] = []
    xff: list[bytes] = []
    state: list[bytes] = []
    for item in headers:
        name = item[0]
        if name not in special:
            if not (drop_isthmus and name.startswith(ISTHMUS_PREFIX)):
                out.append(item)
        elif name == TRACEPARENT:
            traces.append(item[1])
        elif name == TRACESTATE:
            state.append(item[1])
        elif name == _XFF:
            xff.append(item[1])
        elif name == b"connection" and listed is None:
            listed = _listed_in_connection(headers)
            if listed:
                return _rewrite(headers, rng, special, drop_isthmus, listed)
        elif (
            name == b"te"
            and item[1].strip().lower() == b"trailers"
            and not (listed and name in listed)
        ):
            out.append(item)
    traceparent, valid = _child_trace(traces, rng)
    out.append((TRACEPARENT, traceparent))
    if valid and state:
        out.append((TRACESTATE, b",".join(state)))
    return out, xff, traceparent


def from_local_client(
    headers: Headers,
    *,
    client_ip: str,
    proto: str,
    local_cluster: str,
    rng: random.Random,
    keep_host: bool = True,
) -> Headers:
    """Request headers from a local app (outbound listener), ready for the next hop.

    Strips hop-by-hop headers (keeps ``te: trailers``); drops every ``x-isthmus-*`` header the
    client sent (they are ours and must not be spoofed); appends ``client_ip`` to
    ``x-forwarded-for`` and sets ``x-forwarded-proto``; continues the caller's W3C trace with a
    new span (the gateway hop) or starts a sampled trace when ``traceparent`` is missing,
    repeated or invalid (then ``tracestate`` is dropped, as the spec requires); finally adds
    ``x-isthmus-source-cluster: <local_cluster>``. ``keep_host=False`` also drops ``host``
    (the engine sends the authority separately).
    """
    return traced_from_local_client(
        headers,
        client_ip=client_ip,
        proto=proto,
        local_cluster=local_cluster,
        rng=rng,
        keep_host=keep_host,
    )[0]


def traced_from_local_client(
    headers: Headers,
    *,
    client_ip: str,
    proto: str,
    local_cluster: str,
    rng: random.Random,
    keep_host: bool = True,
) -> tuple[Headers, str]:
    """:func:`from_local_client` and the W3C trace id the headers carry on."""
    special = _SPECIAL_LOCAL if keep_host else _SPECIAL_LOCAL_NO_HOST
    out, xff, traceparent = _rewrite(headers, rng, special, True)
    client = client_ip.encode("ascii", "replace")
    out.append((_XFF, b", ".join([*xff, client]) if xff else client))
    out.append((_XFP, proto.encode("ascii", "replace")))
    out.append((SOURCE_CLUSTER, local_cluster.encode("ascii", "replace")))
    return out, traceparent[3:35].decode("ascii")  # ours: "00-<trace id>-<span>-<flags>"


def from_peer_gateway(
    headers: Headers,
    *,
    peer_cluster: str,
    peer_identity: str,
    rng: random.Random,
    keep_host: bool = True,
) -> Headers:
    """Request headers arriving from a peer gateway (inbound, mTLS verified).

    Strips hop-by-hop headers; replaces ``x-isthmus-source-cluster`` and
    ``x-isthmus-source-identity`` by the values proven by the peer's certificate
    (``peer_cluster``, ``peer_identity``), whatever the peer sent; keeps other ``x-isthmus-*``
    (the peer gateway already removed its clients' ones) and ``x-forwarded-*``; continues the
    trace with a new span (or starts one if the peer's is invalid). ``keep_host=False`` also
    drops ``host``.
    """
    return traced_from_peer_gateway(
        headers,
        peer_cluster=peer_cluster,
        peer_identity=peer_identity,
        rng=rng,
        keep_host=keep_host,
    )[0]


def traced_from_peer_gateway(
    headers: Headers,
    *,
    peer_cluster: str,
    peer_identity: str,
    rng: random.Random,
    keep_host: bool = True,
) -> tuple[Headers, str]:
    """:func:`from_peer_gateway` and the W3C trace id the headers carry on."""
    special = _SPECIAL_PEER if keep_host else _SPECIAL_PEER_NO_HOST
    out, xff, traceparent = _rewrite(headers, rng, special, False)
    if xff:
        out.append((_XFF, b", ".join(xff)))
    out.append((SOURCE_CLUSTER, peer_cluster.encode("ascii", "replace")))
    out.append((SOURCE_IDENTITY, peer_identity.encode("ascii", "replace")))
    return out, traceparent[3:35].decode("ascii")  # ours: "00-<trace id>-<span>-<flags>"


_SPECIAL_LOCAL_NO_HOST = _SPECIAL_LOCAL | _HOST
_SPECIAL_PEER_NO_HOST = _SPECIAL_PEER | _HOST


def _printable(text: str, limit: int = 253) -> str:
    cleaned = "".join(ch if " " <= ch <= "~" else "?" for ch in text[:limit])
    return cleaned + ("..." if len(text) > limit else "")


def local_reply(status: int, reason: str, message: str) -> tuple[int, Headers, bytes]:
    """A reply the gateway itself produces: ``(status, headers, body)``.

    ``reason`` is a machine token sent as ``x-isthmus-reason``; ``message`` is the plain-text
    body (control characters replaced, capped in length, newline added).
    """
    body = ("isthmus: " + _printable(message, 1000) + "\n").encode("ascii")
    headers: Headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode("ascii")),
        (REASON, _printable(reason, 64).encode("ascii")),
    ]
    return status, headers, body


def not_found_response(service: str) -> tuple[int, Headers, bytes]:
    """404 for an authority that names no routed service; the body names it."""
    return local_reply(404, "unknown_service", f"no route for service {_printable(service)!r}")


def unavailable_response(reason: str, service: str | None = None) -> tuple[int, Headers, bytes]:
    """503 when nothing can serve the request; ``reason`` goes to ``x-isthmus-reason``."""
    target = f" for service {_printable(service)!r}" if service else ""
    return local_reply(503, reason, f"no upstream available{target}: {reason}")


def fault_abort_response(status: int) -> tuple[int, Headers, bytes]:
    """The reply for a request aborted by the route's fault injection."""
    return local_reply(status, "fault_injected", f"fault injected: aborted with {status}")
