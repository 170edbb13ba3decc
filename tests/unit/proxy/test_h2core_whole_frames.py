"""Frames that arrive whole take a shorter path than frames that arrive in pieces (DATA), and
the usual response codes use prebuilt fields: what a peer sees must not depend on either."""

from __future__ import annotations

import h2.events
from hpack import Decoder

from proxy.protocol.events import DataReceived, EndOfStream, ResponseReceived
from proxy.protocol.hpack_fast import FastEncoder
from tests.unit.proxy.test_h2core_oracle import BASE, client_pair, server_pair


def _answered(body_frames: list[tuple[bytes, bool]], cut: int | None) -> list[object]:
    """Our client's events for a 200 whose DATA frames are ``body_frames``, all bytes fed
    at once (``cut`` None) or split at ``cut``."""
    ours, server = client_pair()
    sid = ours.open_stream()
    ours.send_headers(sid, BASE, end_stream=True)
    server.receive_data(ours.data_to_send())
    server.send_headers(sid, [(b":status", b"200")])
    for data, end in body_frames:
        server.send_data(sid, data, end_stream=end)
    out = server.data_to_send()
    if cut is None:
        return list(ours.receive_data(out))
    return [*ours.receive_data(out[:cut]), *ours.receive_data(out[cut:])]


def test_an_empty_data_frame_that_ends_the_stream_delivers_no_bytes_whole_or_cut() -> None:
    for cut in (None, -1, -5):
        events = _answered([(b"abc", False), (b"", True)], cut)
        data = [e for e in events if isinstance(e, DataReceived)]
        assert [(e.data, e.flow_length) for e in data] == [(b"abc", 3)]
        assert isinstance(events[0], ResponseReceived)
        assert isinstance(events[-1], EndOfStream)


def test_a_whole_data_frame_and_the_same_frame_in_pieces_deliver_the_same_bytes() -> None:
    whole = _answered([(b"x" * 100, True)], None)
    cut = _answered([(b"x" * 100, True)], -30)
    assert b"".join(e.data for e in whole if isinstance(e, DataReceived)) == b"x" * 100
    assert b"".join(e.data for e in cut if isinstance(e, DataReceived)) == b"x" * 100
    assert sum(isinstance(e, DataReceived) for e in cut) == 2  # delivered as it arrived
    assert isinstance(whole[-1], EndOfStream) and isinstance(cut[-1], EndOfStream)


def test_usual_and_unusual_status_codes_reach_an_h2_client() -> None:
    client, server = server_pair()
    codes = [200, 204, 404, 599, 299, 600]  # 299 and 600: not prebuilt
    sids = []
    for _ in codes:
        sid = client.get_next_available_stream_id()
        client.send_headers(sid, BASE, end_stream=True)
        sids.append(sid)
    server.receive_data(client.data_to_send())
    for sid, code in zip(sids, codes, strict=True):
        server.send_headers(sid, code, [(b"x-code", b"%d" % code)], end_stream=True)
    events = client.receive_data(server.data_to_send())
    heads = {e.stream_id: e.headers for e in events if isinstance(e, h2.events.ResponseReceived)}
    for sid, code in zip(sids, codes, strict=True):
        assert heads[sid] == [(b":status", b"%d" % code), (b"x-code", b"%d" % code)]


def test_literals_with_long_and_short_names_decode_like_hpack() -> None:
    """The part of a literal before its value is kept by name (up to a length): a name too
    long to keep, and the same name never indexed and not, encode the same either way."""
    encoder, reference = FastEncoder(), Decoder()
    long_name = b"x-" + b"n" * 100
    for i in range(3):
        sent = [
            (b"traceparent", b"00-%032x-%016x-01" % (i, i)),
            (long_name, b"v" * 300),  # too long a value to index: a literal
            (b"content-length", b"%d" % (i * 1000003)),
        ]
        assert reference.decode(encoder.encode(sent), raw=True) == sent
