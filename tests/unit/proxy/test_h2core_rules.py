"""What our HTTP/2 codec does with every kind of frame a peer may send (RFC 9113 §5–§6):
connection errors end in GOAWAY with the code the RFC names, stream errors in RST_STREAM,
and frames the RFC says to ignore change nothing."""

from __future__ import annotations

import pytest
from hpack import Encoder
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.protocol import h2wire as w
from proxy.protocol.events import (
    ConnectionTerminated,
    DataReceived,
    PingAcknowledged,
    RequestReceived,
    StreamReset,
    WindowUpdated,
)
from proxy.protocol.h2core import H2Core, H2StateError

GET = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a.b"), (b":path", b"/")]


def server(**kwargs: int) -> H2Core:
    """A server that already read the client's preface and empty SETTINGS."""
    core = H2Core(client=False, **kwargs)  # type: ignore[arg-type]
    assert core.receive_data(w.PREFACE + w.settings_frame({})) == [WindowUpdated(0)]
    core.data_to_send()
    return core


def frames_out(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(type, flags, stream id, payload) of every frame in ``data``."""
    out, pos = [], 0
    while pos < len(data):
        hi, lo, ftype, flags, sid = w.unpack_header(data, pos)
        length = (hi << 16) | lo
        out.append((ftype, flags, sid, data[pos + 9 : pos + 9 + length]))
        pos += 9 + length
    return out


def goaway_code(core: H2Core) -> int:
    kinds = [f for f in frames_out(core.data_to_send()) if f[0] == w.GOAWAY]
    assert kinds, "no GOAWAY sent"
    return int.from_bytes(kinds[-1][3][4:8], "big")


def rst_codes(core: H2Core) -> dict[int, int]:
    return {
        sid: int.from_bytes(payload, "big")
        for ftype, _, sid, payload in frames_out(core.data_to_send())
        if ftype == w.RST_STREAM
    }


def headers(sid: int, block: list[tuple[bytes, bytes]], flags: int = 0x5) -> bytes:
    return w.frame(w.HEADERS, flags, sid, Encoder().encode(block))


CONNECTION_ERRORS = [
    ("DATA on stream 0", w.frame(w.DATA, 0, 0, b"abc"), w.PROTOCOL_ERROR),
    ("DATA on an idle stream", w.frame(w.DATA, 0, 5, b"abc"), w.PROTOCOL_ERROR),
    ("HEADERS on stream 0", headers(0, GET), w.PROTOCOL_ERROR),
    ("client opens an even stream", headers(2, GET), w.PROTOCOL_ERROR),
    ("SETTINGS on a stream", w.frame(w.SETTINGS, 0, 1, b""), w.PROTOCOL_ERROR),
    ("SETTINGS length", w.frame(w.SETTINGS, 0, 0, b"\0\0\0"), w.FRAME_SIZE_ERROR),
    ("SETTINGS ACK with payload", w.frame(w.SETTINGS, 1, 0, b"\0" * 6), w.FRAME_SIZE_ERROR),
    ("MAX_FRAME_SIZE too small", w.settings_frame({w.MAX_FRAME_SIZE: 100}), w.PROTOCOL_ERROR),
    ("ENABLE_PUSH = 2", w.settings_frame({w.ENABLE_PUSH: 2}), w.PROTOCOL_ERROR),
    (
        "INITIAL_WINDOW_SIZE > 2^31-1",
        w.settings_frame({w.INITIAL_WINDOW_SIZE: 1 << 31}),
        w.FLOW_CONTROL_ERROR,
    ),
    ("WINDOW_UPDATE of 0 on the connection", w.window_update(0, 0), w.PROTOCOL_ERROR),
    ("connection window overflow", w.window_update(0, w.MAX_WINDOW), w.FLOW_CONTROL_ERROR),
    ("WINDOW_UPDATE length", w.frame(w.WINDOW_UPDATE, 0, 0, b"\0\0\1"), w.FRAME_SIZE_ERROR),
    ("WINDOW_UPDATE on an idle stream", w.window_update(9, 1), w.PROTOCOL_ERROR),
    ("RST_STREAM on stream 0", w.rst_stream(0, 8), w.PROTOCOL_ERROR),
    ("RST_STREAM on an idle stream", w.rst_stream(9, 8), w.PROTOCOL_ERROR),
    ("RST_STREAM length", w.frame(w.RST_STREAM, 0, 1, b"\0"), w.FRAME_SIZE_ERROR),
    ("PING on a stream", w.frame(w.PING, 0, 1, b"\0" * 8), w.PROTOCOL_ERROR),
    ("PING length", w.frame(w.PING, 0, 0, b"\0" * 7), w.FRAME_SIZE_ERROR),
    ("GOAWAY on a stream", w.frame(w.GOAWAY, 0, 1, b"\0" * 8), w.PROTOCOL_ERROR),
    ("PRIORITY on stream 0", w.frame(w.PRIORITY, 0, 0, b"\0" * 5), w.PROTOCOL_ERROR),
    ("PUSH_PROMISE", w.frame(w.PUSH_PROMISE, 4, 1, b"\0\0\0\2"), w.PROTOCOL_ERROR),
    ("CONTINUATION alone", w.frame(w.CONTINUATION, 4, 1, b""), w.PROTOCOL_ERROR),
    (
        "a frame inside a header block",
        headers(1, GET, flags=0x1) + w.frame(w.PING, 0, 0, b"\0" * 8),
        w.PROTOCOL_ERROR,
    ),
    (
        "CONTINUATION of another stream",
        headers(1, GET, flags=0x1) + w.frame(w.CONTINUATION, 4, 3, b""),
        w.PROTOCOL_ERROR,
    ),
    ("padding longer than the frame", w.frame(w.DATA, 0x8, 1, b"\x05ab"), w.PROTOCOL_ERROR),
    ("invalid HPACK", w.frame(w.HEADERS, 5, 1, b"\xff\xff\xff\xff\xff\xff"), w.COMPRESSION_ERROR),
    ("a frame larger than MAX_FRAME_SIZE", (1 << 20).to_bytes(3, "big") + b"\0" * 6, 0x6),
]


@pytest.mark.parametrize(
    ("frames", "code"), [c[1:] for c in CONNECTION_ERRORS], ids=[c[0] for c in CONNECTION_ERRORS]
)
def test_connection_errors_end_in_goaway_with_the_rfcs_code(frames: bytes, code: int) -> None:
    core = server(max_frame_size=1 << 16)
    events = core.receive_data(frames)
    assert isinstance(events[-1], ConnectionTerminated) and events[-1].error_code == code
    assert goaway_code(core) == code
    assert core.receive_data(headers(11, GET)) == []  # nothing more is processed
    with pytest.raises(H2StateError):
        core.send_headers(1, [(b":status", b"200")])


def test_the_preface_and_a_first_settings_frame_are_required() -> None:
    bad = H2Core(client=False)
    assert isinstance(bad.receive_data(b"GET / HTTP/1.1\r\n\r\n")[-1], ConnectionTerminated)
    no_settings = H2Core(client=False)
    events = no_settings.receive_data(w.PREFACE + w.frame(w.PING, 0, 0, b"\0" * 8))
    assert isinstance(events[-1], ConnectionTerminated)
    split = H2Core(client=False)
    assert split.receive_data(w.PREFACE[:5]) == []
    assert split.receive_data(w.PREFACE[5:] + w.settings_frame({})) == [WindowUpdated(0)]


def test_stream_errors_reset_only_that_stream() -> None:
    core = server()
    data = (
        headers(1, GET, flags=0x4)  # open, body follows
        + w.window_update(1, 0)  # increment 0 on a stream: stream PROTOCOL_ERROR
        + headers(3, GET, flags=0x4)
        + w.window_update(3, w.MAX_WINDOW)  # stream window overflow: FLOW_CONTROL_ERROR
        + headers(5, GET, flags=0x4)
        + w.frame(w.PRIORITY, 0, 5, b"\0\0\0\5\x10")  # depends on itself
        + headers(7, [*GET, (b"content-length", b"2")], flags=0x4)
        + w.frame(w.DATA, 1, 7, b"abc")  # longer than content-length
        + headers(9, GET)
    )
    events = core.receive_data(data)
    resets = {e.stream_id: e.error_code for e in events if isinstance(e, StreamReset)}
    assert resets == {
        1: w.PROTOCOL_ERROR,
        3: w.FLOW_CONTROL_ERROR,
        5: w.PROTOCOL_ERROR,
        7: w.PROTOCOL_ERROR,
    }
    assert rst_codes(core) == resets
    assert [e.stream_id for e in events if isinstance(e, RequestReceived)] == [1, 3, 5, 7, 9]
    core.send_headers(9, [(b":status", b"200")], end_stream=True)  # the others still work


def test_frames_on_closed_streams() -> None:
    core = server()
    core.receive_data(headers(1, GET) + headers(3, GET, flags=0x4))
    core.send_headers(1, [(b":status", b"200")], end_stream=True)  # 1 is closed now
    core.reset_stream(3)  # we reset 3: its late frames are ignored
    core.data_to_send()
    late = w.frame(w.DATA, 0, 3, b"late") + headers(3, [(b"x-t", b"1")]) + w.window_update(1, 5)
    assert core.receive_data(late) == []
    assert core.data_to_send() == b""
    events = core.receive_data(headers(1, GET))  # a closed stream cannot be reopened
    assert isinstance(events[-1], ConnectionTerminated)
    assert events[-1].error_code == w.STREAM_CLOSED
    other = server()
    other.receive_data(headers(1, GET))
    events = other.receive_data(w.frame(w.DATA, 0, 1, b"x"))  # after its END_STREAM
    assert [(e.stream_id, e.error_code) for e in events] == [(1, w.STREAM_CLOSED)]  # type: ignore[union-attr]
    assert rst_codes(other) == {1: w.STREAM_CLOSED}


def test_ignored_frames_change_nothing() -> None:
    core = server()
    data = (
        w.frame(0xFA, 0xFF, 0, b"unknown type")
        + w.frame(w.PRIORITY, 0, 11, b"\0\0\0\1\x10")  # on an idle stream: allowed
        + w.settings_frame({0x99: 7})  # unknown setting
        + w.frame(w.HEADERS, 0x2D, 1, b"\x02" + b"\0\0\0\0\x10" + Encoder().encode(GET) + b"pp")
    )
    events = core.receive_data(data)
    assert [type(e) for e in events] == [WindowUpdated, RequestReceived]


def test_ping_is_answered_and_settings_are_acknowledged() -> None:
    core = server()
    core.receive_data(w.frame(w.PING, 0, 0, b"12345678") + w.settings_frame({}))
    out = frames_out(core.data_to_send())
    assert (w.PING, w.ACK, 0, b"12345678") in out
    assert (w.SETTINGS, w.ACK, 0, b"") in out
    client = H2Core(client=True)
    client.receive_data(w.settings_frame({}))
    assert client.receive_data(w.frame(w.PING, w.ACK, 0, b"isthmus!")) == [PingAcknowledged()]


def test_initial_window_size_changes_adjust_open_streams_and_max_frame_size_applies() -> None:
    core = server()
    core.receive_data(headers(1, GET))
    core.receive_data(w.window_update(1, 10))
    assert core.streams[1].send_window == w.DEFAULT_WINDOW + 10
    core.receive_data(w.settings_frame({w.INITIAL_WINDOW_SIZE: 100}))
    assert core.send_window(1) == 110
    core.receive_data(w.settings_frame({w.INITIAL_WINDOW_SIZE: 1 << 20}))
    core.receive_data(w.window_update(0, 1 << 20))
    assert core.send_window(1) == w.DEFAULT_MAX_FRAME
    core.receive_data(w.settings_frame({w.MAX_FRAME_SIZE: 1 << 17}))
    assert core.send_window(1) == 1 << 17
    core.send_headers(1, [(b":status", b"200")])
    with pytest.raises(H2StateError):
        core.send_data(1, b"x" * ((1 << 17) + 1))


def test_flow_control_of_what_the_peer_sends() -> None:
    core = server(initial_window_size=w.DEFAULT_WINDOW, connection_window_size=w.DEFAULT_WINDOW)
    core.receive_data(headers(1, GET, flags=0x4))
    chunk = w.frame(w.DATA, 0, 1, b"x" * 16384)
    events = core.receive_data(chunk * 3 + w.frame(w.DATA, 0, 1, b"x" * 16383))
    assert sum(e.flow_length for e in events if isinstance(e, DataReceived)) == w.DEFAULT_WINDOW
    events = core.receive_data(w.frame(w.DATA, 0, 1, b"!"))  # one byte beyond the window
    assert isinstance(events[-1], ConnectionTerminated)
    assert events[-1].error_code == w.FLOW_CONTROL_ERROR


def test_consumed_bytes_give_credit_back_in_batches() -> None:
    core = server(
        initial_window_size=w.DEFAULT_WINDOW,
        connection_window_size=w.DEFAULT_WINDOW,
        max_frame_size=1 << 16,
    )
    core.receive_data(headers(1, GET, flags=0x4) + w.frame(w.DATA, 0, 1, b"x" * 30000))
    core.acknowledge(1, 30000)
    assert core.data_to_send() == b""  # less than half a window: no update yet
    core.receive_data(w.frame(w.DATA, 0, 1, b"x" * 30000))
    core.acknowledge(1, 30000)
    updates = {
        sid: int.from_bytes(p, "big")
        for t, _, sid, p in frames_out(core.data_to_send())
        if t == w.WINDOW_UPDATE
    }
    assert updates == {0: 60000, 1: 60000}


def test_oversized_header_lists_are_refused_with_enhance_your_calm() -> None:
    core = server(max_header_list_size=1000)
    events = core.receive_data(headers(1, [*GET, (b"x-big", b"a" * 2000)]))
    assert isinstance(events[-1], ConnectionTerminated)
    assert events[-1].error_code == w.ENHANCE_YOUR_CALM


def test_header_blocks_split_over_continuation_frames_both_ways() -> None:
    client = H2Core(client=True, max_frame_size=w.DEFAULT_MAX_FRAME)
    srv = server()
    srv.receive_data(client.data_to_send()[len(w.PREFACE) :])
    sid = client.open_stream()
    big = [*GET, (b"x-big", b"b" * 40000)]
    client.send_headers(sid, big, end_stream=True)
    out = client.data_to_send()
    assert [t for t, *_ in frames_out(out)] == [w.HEADERS, w.CONTINUATION, w.CONTINUATION]
    events = srv.receive_data(out)
    request = next(e for e in events if isinstance(e, RequestReceived))
    assert request.headers == [(b"x-big", b"b" * 40000)]


def test_goaway_from_the_peer_keeps_the_spared_streams_working() -> None:
    client = H2Core(client=True)
    client.receive_data(w.settings_frame({}))
    one, three = client.open_stream(), client.open_stream()
    client.send_headers(one, GET, end_stream=True)
    client.send_headers(three, GET, end_stream=True)
    events = client.receive_data(w.goaway(1, 0))
    assert events == [ConnectionTerminated(0, 1, "peer sent GOAWAY (NO_ERROR)")]
    assert not client.closed
    answer = headers(one, [(b":status", b"200")], flags=0x4) + w.frame(w.DATA, 1, one, b"ok")
    kinds = [type(e).__name__ for e in client.receive_data(answer)]
    assert kinds == ["ResponseReceived", "DataReceived", "EndOfStream"]


def test_a_client_refuses_push_and_responses_on_streams_it_never_opened() -> None:
    client = H2Core(client=True)
    client.receive_data(w.settings_frame({}))
    events = client.receive_data(w.settings_frame({w.ENABLE_PUSH: 1}))
    assert events[-1].error_code == w.PROTOCOL_ERROR  # type: ignore[union-attr]
    other = H2Core(client=True)
    other.receive_data(w.settings_frame({}))
    events = other.receive_data(headers(1, [(b":status", b"200")]))
    assert isinstance(events[-1], ConnectionTerminated)


def test_stream_ids_run_out() -> None:
    client = H2Core(client=True)
    client._next_id = w.MAX_STREAM_ID  # the last id a client may use
    client.open_stream()
    with pytest.raises(H2StateError):
        client.open_stream()


_frame = st.tuples(
    st.sampled_from([*range(10), 0x20]),  # every type, and an unknown one
    st.integers(0, 255),
    st.sampled_from([0, 1, 2, 3, 5, 7, 0x7FFFFFFF]),
    st.one_of(
        st.binary(max_size=40),
        st.just(Encoder().encode(GET)),
        st.just(b"\0\0\0\1"),
        st.just(b"\0\4\0\0\0\0"),
    ),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_frame, max_size=12), st.booleans(), st.lists(st.integers(0, 500), max_size=6))
def test_arbitrary_frame_sequences_never_raise(
    frames: list[tuple[int, int, int, bytes]], client: bool, cuts: list[int]
) -> None:
    """Whatever a peer sends, receive_data returns events (never raises); after a connection
    error it processes nothing more, and the driver's calls stay safe."""
    core = H2Core(client=client)
    data = b"" if client else w.PREFACE
    data += w.settings_frame({}) + b"".join(w.frame(t, f, s, p) for t, f, s, p in frames)
    if client:
        core.open_stream()
        core.send_headers(1, GET, end_stream=False)
    pos = 0
    for cut in sorted({c % (len(data) + 1) for c in cuts} | {len(data)}):
        events = core.receive_data(data[pos:cut])
        pos = cut
        if core.closed:  # a connection error: GOAWAY was queued and reported
            assert isinstance(events[-1], ConnectionTerminated)
            assert core.receive_data(data[pos:]) == []
            break
    for sid in (1, 3):
        core.acknowledge(sid, 10)
        core.reset_stream(sid)
        assert core.send_window(sid) == 0
    core.data_to_send()


def test_a_large_data_frame_is_delivered_as_it_arrives_and_credited_exactly() -> None:
    """An unpadded DATA frame is not buffered whole; a stream reset in the middle of one
    credits the rest of it to the connection, so the window stays exact."""
    core = server(
        max_frame_size=1 << 20, initial_window_size=1 << 20, connection_window_size=1 << 22
    )
    core.receive_data(headers(1, GET, flags=0x4) + headers(3, GET, flags=0x4))
    frame = w.frame(w.DATA, 0, 1, b"a" * 300_000)
    first = core.receive_data(frame[:100_009])
    assert [(type(e), len(e.data)) for e in first] == [(DataReceived, 100_000)]  # type: ignore[union-attr]
    core.reset_stream(1)
    assert core.receive_data(frame[100_009:]) == []
    core.data_to_send()
    core.acknowledge(1, 100_000)  # the consumer returns what it had taken
    window = core._conn_recv_window + core._conn_unacked
    assert window == core._conn_recv_max  # every byte is accounted for
    second = w.frame(w.DATA, 1, 3, b"b" * 70_000)
    events = core.receive_data(second[:5] + b"")
    events += core.receive_data(second[5:30]) + core.receive_data(second[30:])
    assert b"".join(e.data for e in events if isinstance(e, DataReceived)) == b"b" * 70_000
    assert type(events[-1]).__name__ == "EndOfStream"


def test_forwarded_data_goes_to_the_callee_as_views_with_exact_credit() -> None:
    """A forwarded stream's payload pieces reach the callee (no DataReceived), padding
    included in their flow length; END_STREAM still comes as an event; credit is the
    callee's: the window stays short until it acknowledges."""
    core = server(max_frame_size=1 << 20, initial_window_size=1 << 20)
    core.receive_data(headers(1, GET, flags=0x4))
    taken: list[tuple[bytes, int]] = []
    core.forward_data(1, lambda view, flow: taken.append((bytes(view), flow)))
    frame = w.frame(w.DATA, 0, 1, b"x" * 50_000)
    padded = w.frame(w.DATA, w.PADDED | w.END_STREAM, 1, b"\x03abc\0\0\0")
    events = core.receive_data(frame[:20_009]) + core.receive_data(frame[20_009:] + padded)
    assert [type(e).__name__ for e in events] == ["EndOfStream"]
    assert taken == [(b"x" * 20_000, 20_000), (b"x" * 30_000, 30_000), (b"abc", 7)]
    assert core._conn_recv_window == core._conn_recv_max - 50_007
    core.acknowledge(1, 50_007)
    assert core._conn_recv_window + core._conn_unacked == core._conn_recv_max


def test_borrowed_data_is_queued_by_reference_and_taken_in_order() -> None:
    core = server()
    core.receive_data(headers(1, GET, flags=0x4))
    core.send_headers(1, [(b":status", b"200")])
    buffer = bytearray(b"y" * w.DEFAULT_MAX_FRAME)
    core.send_data(1, memoryview(buffer), borrow=True)
    parts = core.take_output()
    assert isinstance(parts[-1], memoryview) and parts[-1].obj is buffer  # not copied
    kinds = [(f[0], len(f[3])) for f in frames_out(b"".join(parts))]
    assert kinds == [(w.HEADERS, kinds[0][1]), (w.DATA, w.DEFAULT_MAX_FRAME)]
    assert core.take_output() == [] and core.data_to_send() == b""
