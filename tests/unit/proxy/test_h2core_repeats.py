"""Repeated header blocks (byte for byte, as load generators and backends send them): the
decoded and parsed heads are memoized, and every stream must still get exactly what it
would get from a fresh parse (its own field list, its own length checks)."""

from __future__ import annotations

import h2.connection
import h2.events

from proxy.protocol import h2wire
from proxy.protocol.events import RequestReceived, ResponseReceived, StreamReset
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
