"""Repeated header blocks (byte for byte, as load generators and backends send them): the
decoded and parsed heads are memoized, and every stream must still get exactly what it
would get from a fresh parse (its own field list, its own length checks)."""

from __future__ import annotations

import h2.connection
import h2.events

from proxy.protocol import h2wire
from proxy.protocol.events import RequestReceived, ResponseReceived, StreamReset
from proxy.protocol.h2core import H2Core
from proxy.protocol.h2session import H2ServerSession, H2SessionSettings
from tests.unit.proxy.test_h2core_oracle import BASE, client_pair, h2_client


def _server(validate: bool) -> tuple[h2.connection.H2Connection, H2ServerSession]:
    client = h2_client()
    server = H2ServerSession(H2SessionSettings(validate_headers=validate))
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    return client, server


def test_repeated_request_heads_give_every_stream_its_own_fields() -> None:
    client, server = _server(validate=True)
    extra = [(b"user-agent", b"h2load"), (b"accept", b"*/*")]
    heads: list[RequestReceived] = []
    for sid in (1, 3, 5, 7):  # from the second on, the same bytes (table references)
        client.send_headers(sid, [*BASE, *extra], end_stream=True)
        events = server.receive_data(client.data_to_send())
        heads.extend(e for e in events if isinstance(e, RequestReceived))
        if heads:
            heads[-1].headers.append((b"x-added-by-a-consumer", b"1"))
    assert [h.stream_id for h in heads] == [1, 3, 5, 7]
    for head in heads:
        assert (head.method, head.scheme, head.authority, head.path) == (
            b"GET",
            b"http",
            b"a.b",
            b"/",
        )
        assert head.headers == [*extra, (b"x-added-by-a-consumer", b"1")]


def test_a_repeated_head_is_length_checked_for_each_stream() -> None:
    """On the non-validating leg a body-less request's content-length is not read; the same
    head on a stream with a body must still be held to it."""
    client, server = _server(validate=False)
    head = [*BASE, (b"content-length", b"5")]
    for sid in (1, 3, 5):  # 1 and 3 end with the head: content-length not read for them
        client.send_headers(sid, head, end_stream=sid < 5)
        if sid == 5:
            client.send_data(sid, b"12345", end_stream=True)
    events = server.receive_data(client.data_to_send())
    assert [e.stream_id for e in events if isinstance(e, RequestReceived)] == [1, 3, 5]
    client.send_headers(7, head)
    client.send_data(7, b"123", end_stream=True)  # shorter than declared
    events = server.receive_data(client.data_to_send())
    assert any(isinstance(e, StreamReset) and e.stream_id == 7 for e in events)
    answer = client.receive_data(server.data_to_send())
    reset = next(e for e in answer if isinstance(e, h2.events.StreamReset))
    assert (reset.stream_id, reset.error_code) == (7, h2wire.PROTOCOL_ERROR)


def test_repeated_response_heads_give_every_stream_its_own_fields() -> None:
    ours, server = client_pair(validate=False)
    fields = [(b"content-type", b"text/plain"), (b"content-length", b"2")]
    heads: list[ResponseReceived] = []
    for _ in range(4):
        sid = ours.open_stream()
        ours.send_headers(sid, BASE, end_stream=True)
        server.receive_data(ours.data_to_send())
        server.send_headers(sid, [(b":status", b"200"), *fields])
        server.send_data(sid, b"ok", end_stream=True)
        events = ours.receive_data(server.data_to_send())
        heads.extend(e for e in events if isinstance(e, ResponseReceived))
        heads[-1].headers.clear()  # a consumer may reuse the list
    assert len(heads) == 4
    assert all(h.status == 200 for h in heads)
    assert not ours.streams
    sid = ours.open_stream()
    ours.send_headers(sid, BASE, end_stream=True)
    server.receive_data(ours.data_to_send())
    server.send_headers(sid, [(b":status", b"200"), *fields])
    server.send_data(sid, b"toolong", end_stream=True)  # the kept head declares 2 bytes
    events = ours.receive_data(server.data_to_send())
    head = next(e for e in events if isinstance(e, ResponseReceived))
    assert head.headers == fields
    assert any(isinstance(e, StreamReset) and e.stream_id == sid for e in events)


def _ours_to(validate: bool) -> tuple[H2Core, H2ServerSession]:
    client = H2Core(client=True)
    server = H2ServerSession(H2SessionSettings(validate_headers=validate))
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    return client, server


def _trace(i: int) -> tuple[bytes, bytes]:
    return (b"traceparent", b"00-%032x-%016x-01" % (i, i))


def _past_the_kept_blocks(client: H2Core, server: H2ServerSession) -> None:
    """Enough blocks that never repeat that the decoder stops keeping them whole (it keeps
    256, then one in 64): from here on a block's head is parsed by its runs."""
    for i in range(300):
        sid = client.open_stream()
        client.send_headers(sid, [*BASE, _trace(10_000 + i)], end_stream=True)
        server.receive_data(client.data_to_send())
        server.reset_stream(sid)


def test_blocks_that_differ_in_a_trace_id_give_every_stream_the_whole_head() -> None:
    """A gateway's request blocks differ in one literal (a new trace id) between the same
    table references: the head of the leading run is parsed once (non-validating leg), and
    each stream still gets all its fields, in order, in its own list."""
    client, server = _ours_to(validate=False)
    _past_the_kept_blocks(client, server)
    tail = [(b"x-forwarded-for", b"10.0.0.1"), (b"x-isthmus-source-cluster", b"alpha")]
    heads: list[RequestReceived] = []
    for i in range(6):
        sid = client.open_stream()
        sent = [*BASE, (b"user-agent", b"h2load"), _trace(i), *tail]
        client.send_headers(sid, sent, end_stream=True)
        events = server.receive_data(client.data_to_send())
        heads.extend(e for e in events if isinstance(e, RequestReceived))
        heads[-1].headers.append((b"x-added-by-a-consumer", b"1"))
    assert len(heads) == 6
    for i, head in enumerate(heads):
        assert (head.method, head.scheme, head.authority, head.path) == (
            b"GET",
            b"http",
            b"a.b",
            b"/",
        )
        assert head.headers == [
            (b"user-agent", b"h2load"),
            _trace(i),
            *tail,
            (b"x-added-by-a-consumer", b"1"),
        ]


def test_after_a_parsed_run_the_rules_of_the_whole_block_still_hold() -> None:
    """What follows the run is checked as the whole block would be: a pseudo-header there
    resets the stream, a content-length there binds a body; a run without ``:authority``
    takes ``host`` from later fields."""
    client, server = _ours_to(validate=False)
    _past_the_kept_blocks(client, server)
    client.receive_data(server.data_to_send())
    no_authority = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/")]
    agent = (b"user-agent", b"u")
    warm = [*BASE, agent, _trace(0), (b"host", b"h.example"), (b"content-length", b"5")]
    cases = [
        (warm, False),  # stream 1 puts the fields in the table: later blocks reference them
        ([*BASE, agent, _trace(1), (b":path", b"/late")], True),  # misplaced pseudo-header
        ([*BASE, agent, _trace(2), (b"content-length", b"5")], False),  # body of 5 bytes
        ([*BASE, agent, _trace(3), (b"content-length", b"5")], False),  # body of 3: short
        ([*no_authority, agent, _trace(4), (b"host", b"h.example")], True),
        ([*BASE, agent, _trace(5)], True),
    ]
    events = []
    for i, (fields, end) in enumerate(cases):
        sid = client.open_stream()
        client.send_headers(sid, fields, end_stream=end)
        if not end:
            client.send_data(sid, b"12345" if i != 3 else b"123", end_stream=True)
        events.extend(server.receive_data(client.data_to_send()))
    assert {e.stream_id for e in events if isinstance(e, StreamReset)} == {607}
    heads = [e for e in events if isinstance(e, RequestReceived)]
    first = 601  # after the 300 streams of _past_the_kept_blocks
    assert [(h.stream_id - first, h.authority, h.path) for h in heads] == [
        (0, b"a.b", b"/"),
        (4, b"a.b", b"/"),
        (6, b"a.b", b"/"),
        (8, b"h.example", b"/"),
        (10, b"a.b", b"/"),
    ]  # the second stream never started: it was reset at once
    assert heads[-1].headers == [agent, _trace(5)]
    refused = client.receive_data(server.data_to_send())
    assert {e.stream_id - first for e in refused if isinstance(e, StreamReset)} == {2, 6}


def test_connect_heads_after_the_kept_blocks_are_parsed_whole() -> None:
    client, server = _ours_to(validate=False)
    _past_the_kept_blocks(client, server)
    connect = [(b":method", b"CONNECT"), (b":authority", b"db.internal:5432")]
    heads = []
    for i in range(3):
        sid = client.open_stream()
        client.send_headers(sid, [*connect, _trace(i)])
        events = server.receive_data(client.data_to_send())
        heads.extend(e for e in events if isinstance(e, RequestReceived))
    assert [(h.method, h.authority, h.path, h.headers) for h in heads] == [
        (b"CONNECT", b"db.internal:5432", b"db.internal:5432", [_trace(i)]) for i in range(3)
    ]
