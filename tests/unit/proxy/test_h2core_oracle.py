"""Our HTTP/2 codec against the ``h2`` library as an oracle, in memory, both roles.

An h2 client talks to :class:`H2ServerSession` and our client core talks to an h2 server;
whatever one side sends, the other must see exactly (heads, bodies, trailers, ends, resets),
for fixed and hypothesis-generated exchanges split into arbitrary reads.
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.utilities
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.protocol import h2wire
from proxy.protocol.events import (
    DataReceived,
    EndOfStream,
    RequestReceived,
    ResponseReceived,
    StreamReset,
    TrailersReceived,
)
from proxy.protocol.h2core import H2Core
from proxy.protocol.h2headers import MalformedHeaders, parse_request
from proxy.protocol.h2session import H2ServerSession, H2SessionSettings

BASE = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a.b"), (b":path", b"/")]


def h2_client() -> h2.connection.H2Connection:
    """An h2 client that sends header blocks as given (even invalid ones)."""
    config = h2.config.H2Configuration(
        client_side=True,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )
    conn = h2.connection.H2Connection(config)
    conn.initiate_connection()
    return conn


def h2_server() -> h2.connection.H2Connection:
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding=None)
    )
    conn.initiate_connection()
    return conn


def feed(session: H2ServerSession | H2Core, data: bytes, cuts: list[int]) -> list[object]:
    """Deliver ``data`` in pieces cut at ``cuts`` (offsets), collecting the events."""
    events: list[object] = []
    pos = 0
    for cut in sorted({c % (len(data) + 1) for c in cuts} | {len(data)}):
        if cut > pos:
            events.extend(session.receive_data(data[pos:cut]))
            pos = cut
    return events


def server_pair() -> tuple[h2.connection.H2Connection, H2ServerSession]:
    client, server = h2_client(), H2ServerSession(H2SessionSettings(max_concurrent_streams=8))
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())  # the SETTINGS ACK
    return client, server


def requests_of(events: list[object]) -> dict[int, tuple[RequestReceived, bytes, bool]]:
    seen: dict[int, tuple[RequestReceived, bytes, bool]] = {}
    for ev in events:
        if isinstance(ev, RequestReceived):
            seen[ev.stream_id] = (ev, b"", ev.end_stream)
        elif isinstance(ev, DataReceived):
            head, body, ended = seen[ev.stream_id]
            seen[ev.stream_id] = (head, body + ev.data, ended)
        elif isinstance(ev, EndOfStream):
            head, body, _ = seen[ev.stream_id]
            seen[ev.stream_id] = (head, body, True)
    return seen


_body = st.binary(max_size=3000)
_extra = st.lists(
    st.tuples(
        st.sampled_from([b"x-a", b"accept", b"user-agent", b"x-trace"]),
        st.binary(min_size=1, max_size=40).map(lambda b: bytes(0x61 + c % 26 for c in b)),
    ),
    max_size=5,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(_extra, _body, st.integers(0, 40)), min_size=1, max_size=6),
    st.lists(st.integers(0, 1 << 16), max_size=12),
)
def test_h2_client_requests_arrive_exactly_at_our_server(
    requests: list[tuple[list[tuple[bytes, bytes]], bytes, int]], cuts: list[int]
) -> None:
    client, server = server_pair()
    sent = {}
    for extra, body, pad in requests:
        sid = client.get_next_available_stream_id()
        client.send_headers(sid, [*BASE, *extra], end_stream=not body)
        if body:
            client.send_data(sid, body, end_stream=True, pad_length=pad or None)
        sent[sid] = (extra, body)
    got = requests_of(feed(server, client.data_to_send(), cuts))
    assert set(got) == set(sent)
    for sid, (extra, body) in sent.items():
        head, received, ended = got[sid]
        assert (head.method, head.path, head.authority) == (b"GET", b"/", b"a.b")
        assert head.headers == extra and received == body and ended


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(_extra, _body, st.booleans()), min_size=1, max_size=6),
    st.lists(st.integers(0, 1 << 16), max_size=12),
)
def test_our_server_responses_arrive_exactly_at_an_h2_client(
    responses: list[tuple[list[tuple[bytes, bytes]], bytes, bool]], cuts: list[int]
) -> None:
    client, server = server_pair()
    sids = []
    for _ in responses:
        sid = client.get_next_available_stream_id()
        client.send_headers(sid, BASE, end_stream=True)
        sids.append(sid)
    server.receive_data(client.data_to_send())
    for sid, (extra, body, trailers) in zip(sids, responses, strict=True):
        server.send_headers(sid, 200, extra)
        if body:
            server.send_data(sid, body, end_stream=not trailers)
        if trailers:
            server.send_trailers(sid, [(b"grpc-status", b"0")])
        elif not body:
            server.end_stream(sid)
    out = server.data_to_send()
    events = []
    pos = 0
    for cut in sorted({c % (len(out) + 1) for c in cuts} | {len(out)}):
        events.extend(client.receive_data(out[pos:cut]))
        pos = cut
    for sid, (extra, body, trailers) in zip(sids, responses, strict=True):
        heads = [e for e in events if isinstance(e, h2.events.ResponseReceived)]
        assert next(e.headers for e in heads if e.stream_id == sid) == [
            (b":status", b"200"),
            *extra,
        ]
        data = b"".join(
            e.data for e in events if isinstance(e, h2.events.DataReceived) and e.stream_id == sid
        )
        assert data == body
        tails = [e for e in events if isinstance(e, h2.events.TrailersReceived)]
        assert any(e.stream_id == sid for e in tails) == trailers
        assert any(isinstance(e, h2.events.StreamEnded) and e.stream_id == sid for e in events)


def client_pair(validate: bool = True) -> tuple[H2Core, h2.connection.H2Connection]:
    ours, server = H2Core(client=True, validate=validate), h2_server()
    server.receive_data(ours.data_to_send())
    ours.receive_data(server.data_to_send())
    server.receive_data(ours.data_to_send())
    return ours, server


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(_extra, _body, _body), min_size=1, max_size=5),
    st.lists(st.integers(0, 1 << 16), max_size=12),
)
def test_our_client_and_an_h2_server_agree_on_every_byte(
    exchanges: list[tuple[list[tuple[bytes, bytes]], bytes, bytes]], cuts: list[int]
) -> None:
    ours, server = client_pair()
    sids = []
    for extra, request_body, _ in exchanges:
        sid = ours.open_stream()
        ours.send_headers(sid, [*BASE, *extra], end_stream=not request_body)
        if request_body:
            ours.send_data(sid, request_body, end_stream=True)
        sids.append(sid)
    events = server.receive_data(ours.data_to_send())
    for sid, (extra, request_body, response_body) in zip(sids, exchanges, strict=True):
        got = b"".join(
            e.data for e in events if isinstance(e, h2.events.DataReceived) and e.stream_id == sid
        )
        assert got == request_body
        head = next(
            e for e in events if isinstance(e, h2.events.RequestReceived) and e.stream_id == sid
        )
        assert head.headers == [*BASE, *extra]
        server.send_headers(sid, [(b":status", b"201"), *extra], end_stream=not response_body)
        if response_body:
            server.send_data(sid, response_body, end_stream=True)
    mine = feed(ours, server.data_to_send(), cuts)
    for sid, (extra, _, response_body) in zip(sids, exchanges, strict=True):
        head = next(e for e in mine if isinstance(e, ResponseReceived) and e.stream_id == sid)
        assert (head.status, head.headers) == (201, extra)
        body = b"".join(e.data for e in mine if isinstance(e, DataReceived) and e.stream_id == sid)
        assert body == response_body
        assert any(isinstance(e, EndOfStream) and e.stream_id == sid for e in mine)
    assert not ours.streams  # every stream closed both ways


def test_large_bodies_flow_both_ways_within_the_windows() -> None:
    """5 MiB each way on one stream: only as much as the windows allow is ever in flight, and
    acknowledging what was consumed keeps it moving."""
    ours, server = client_pair()
    sid = ours.open_stream()
    ours.send_headers(sid, [*BASE[:3], (b":path", b"/up")])
    payload = bytes(range(256)) * (5 * 4096)
    sent = received = 0
    upload = bytearray()
    for _ in range(10_000):
        if sent == len(payload):
            break
        n = min(ours.send_window(sid), len(payload) - sent)
        if n:
            ours.send_data(sid, payload[sent : sent + n], end_stream=sent + n == len(payload))
            sent += n
        for ev in server.receive_data(ours.data_to_send()):
            if isinstance(ev, h2.events.DataReceived):
                upload += ev.data
                server.acknowledge_received_data(ev.flow_controlled_length, sid)
        ours.receive_data(server.data_to_send())
    assert bytes(upload) == payload
    server.send_headers(sid, [(b":status", b"200")])
    download = bytearray()
    for _ in range(10_000):
        if received == len(payload):
            break
        n = min(server.local_flow_control_window(sid), server.max_outbound_frame_size)
        n = min(n, len(payload) - received)
        if n:
            server.send_data(sid, payload[received : received + n])
            received += n
        for ev in ours.receive_data(server.data_to_send()):
            if isinstance(ev, DataReceived):
                download += ev.data
                ours.acknowledge(sid, ev.flow_length)
        server.receive_data(ours.data_to_send())
    assert bytes(download) == payload


_ODD = [
    (b"Host", b"x"),
    (b"host", b"a.b"),
    (b"host", b"other"),
    (b"connection", b"close"),
    (b"te", b"trailers"),
    (b"te", b"gzip"),
    (b"x-a", b" padded"),
    (b"x-b", b"line\nbreak"),
    (b"x-c", b""),
    (b"", b"empty-name"),
    (b"x:d", b"colon"),
    (b":status", b"200"),
    (b":protocol", b"websocket"),
    (b":path", b""),
    (b":method", b"POST"),
    (b"transfer-encoding", b"chunked"),
    (b"x-\xff", b"8bit"),
]
REQUEST_FLAGS = h2.utilities.HeaderValidationFlags(False, False, False, False)


def h2_accepts(block: list[tuple[bytes, bytes]]) -> bool:
    try:
        list(h2.utilities.validate_headers(block, REQUEST_FLAGS))
    except h2.exceptions.ProtocolError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(BASE + _ODD), max_size=8), st.permutations(range(4)))
def test_request_validation_matches_h2s_verdict(
    extra: list[tuple[bytes, bytes]], order: list[int]
) -> None:
    block = [BASE[i] for i in order] + extra
    try:
        parse_request(block, validate=True)
        ours = True
    except MalformedHeaders:
        ours = False
    assert ours == h2_accepts(block), block


@pytest.mark.parametrize(
    ("block", "valid"),
    [
        ([(b":method", b"CONNECT"), (b":authority", b"db:5432")], True),
        ([(b":method", b"CONNECT"), (b":authority", b"db:5432"), (b":path", b"/")], False),
        ([(b":method", b"CONNECT"), (b":scheme", b"https"), (b":authority", b"h")], False),
        (
            [
                (b":method", b"CONNECT"),
                (b":protocol", b"websocket"),
                (b":scheme", b"https"),
                (b":path", b"/chat"),
                (b":authority", b"h"),
            ],
            True,
        ),
    ],
)
def test_connect_follows_rfc_9113_section_8_5(
    block: list[tuple[bytes, bytes]], valid: bool
) -> None:
    """h2 accepts :scheme/:path on a plain CONNECT; RFC 9113 §8.5 says they MUST be omitted."""
    try:
        parse_request(block, validate=True)
        ok = True
    except MalformedHeaders:
        ok = False
    assert ok == valid


def test_a_malformed_request_resets_only_its_stream() -> None:
    client, server = server_pair()
    client.send_headers(1, [*BASE, (b"connection", b"close")], end_stream=True)
    client.send_headers(3, BASE, end_stream=True)
    events = server.receive_data(client.data_to_send())
    assert [type(e) for e in events] == [RequestReceived]
    assert events[0].stream_id == 3  # type: ignore[attr-defined]
    answer = client.receive_data(server.data_to_send())
    reset = next(e for e in answer if isinstance(e, h2.events.StreamReset))
    assert (reset.stream_id, reset.error_code) == (1, h2wire.PROTOCOL_ERROR)


def test_streams_beyond_the_concurrency_limit_are_refused() -> None:
    client = h2_client()  # it has not seen our SETTINGS yet, so it opens 9 streams at once
    server = H2ServerSession(H2SessionSettings(max_concurrent_streams=8))
    for _ in range(9):
        client.send_headers(client.get_next_available_stream_id(), BASE)
    events = server.receive_data(client.data_to_send())
    assert len([e for e in events if isinstance(e, RequestReceived)]) == 8
    answer = client.receive_data(server.data_to_send())
    reset = next(e for e in answer if isinstance(e, h2.events.StreamReset))
    assert (reset.stream_id, reset.error_code) == (17, h2wire.REFUSED_STREAM)


def test_client_side_trailers_and_peer_resets_are_reported() -> None:
    ours, server = client_pair()
    one, two = ours.open_stream(), ours.open_stream()
    ours.send_headers(one, BASE, end_stream=True)
    ours.send_headers(two, BASE, end_stream=True)
    server.receive_data(ours.data_to_send())
    server.send_headers(one, [(b":status", b"200")])
    server.send_headers(one, [(b"grpc-status", b"0")], end_stream=True)
    server.reset_stream(two, h2wire.REFUSED_STREAM)
    events = ours.receive_data(server.data_to_send())
    assert TrailersReceived(one, [(b"grpc-status", b"0")]) in events
    assert StreamReset(two, h2wire.REFUSED_STREAM) in events
