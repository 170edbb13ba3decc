"""The fast h2 header validator accepts and rejects exactly what h2's own validator does."""

from __future__ import annotations

import random

import h2.config
import h2.connection
import h2.exceptions
import h2.settings
import h2.utilities
import pytest

from proxy.protocol.h2fast import FastH2Connection, install, validate_headers
from proxy.protocol.h2session import H2ServerSession

REQUEST = h2.utilities.HeaderValidationFlags(False, False, False, False)
RESPONSE = h2.utilities.HeaderValidationFlags(True, False, True, False)
TRAILER = h2.utilities.HeaderValidationFlags(False, True, False, False)
_BASE = [
    (b":method", b"GET"),
    (b":scheme", b"https"),
    (b":authority", b"checkout.shop.global"),
    (b":path", b"/cart"),
    (b"user-agent", b"curl/8"),
]
_ODD = [
    (b"Host", b"x"),
    (b"host", b"checkout.shop.global"),
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
    (b":method", b"CONNECT"),
    (b":path", b""),
    (b":custom", b"x"),
    (b"x-e", b"caf\xc3\xa9"),
]


def _outcome(validator: object, headers: list[tuple[bytes, bytes]], flags: object) -> str:
    try:
        return repr(list(validator(headers, flags)))  # type: ignore[operator]
    except h2.exceptions.ProtocolError as err:
        return f"error: {err}"


@pytest.mark.parametrize("flags", [REQUEST, RESPONSE, TRAILER])
def test_random_blocks_get_the_same_verdict_and_message_as_h2(flags: object) -> None:
    rng = random.Random(11)
    for _ in range(3000):
        block = list(_BASE)
        for _ in range(rng.randint(0, 3)):
            block.insert(rng.randint(0, len(block)), rng.choice(_ODD))
        if rng.random() < 0.2:
            del block[rng.randrange(len(block))]
        assert _outcome(validate_headers, block, flags) == _outcome(
            h2.utilities.validate_headers, block, flags
        )


def test_a_valid_request_passes_unchanged() -> None:
    assert list(validate_headers(list(_BASE), REQUEST)) == _BASE


def _pair(max_streams: int) -> tuple[FastH2Connection, FastH2Connection]:
    client = FastH2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    server = FastH2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
    server.local_settings = h2.settings.Settings(
        client=False,
        initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_streams},
    )
    client.initiate_connection()
    server.initiate_connection()
    for _ in range(2):
        server.receive_data(client.data_to_send())
        client.receive_data(server.data_to_send())
    return client, server


def test_the_peers_concurrent_stream_limit_still_holds_and_frees_up_as_streams_close() -> None:
    client, server = _pair(max_streams=2)
    for stream_id in (1, 3):
        client.send_headers(stream_id, _BASE, end_stream=True)
    with pytest.raises(h2.exceptions.TooManyStreamsError):
        client.send_headers(5, _BASE, end_stream=True)
    server.receive_data(client.data_to_send())
    for stream_id in (1, 3):
        server.send_headers(stream_id, [(b":status", b"200")], end_stream=True)
    client.receive_data(server.data_to_send())
    for stream_id in (5, 7):
        client.send_headers(stream_id, _BASE, end_stream=True)
    assert [type(e).__name__ for e in server.receive_data(client.data_to_send())].count(
        "RequestReceived"
    ) == 2


def test_frames_still_accept_only_their_own_flags() -> None:
    from hyperframe.frame import DataFrame, HeadersFrame

    install()
    headers = HeadersFrame(1, flags=["END_HEADERS"])
    assert "END_HEADERS" in headers.flags and "END_STREAM" not in headers.flags
    with pytest.raises(ValueError, match="Unexpected flag"):
        DataFrame(1).flags.add("END_HEADERS")


def test_outgoing_blocks_are_bytes_either_way() -> None:
    from hpack import NeverIndexedHeaderTuple

    from proxy.protocol.h2fast import utf8_encode_headers

    as_bytes = [(b":status", b"200"), NeverIndexedHeaderTuple(b"x-secret", b"s")]
    mixed = [(":status", "200"), (b"x-a", "é")]
    assert utf8_encode_headers(as_bytes) == h2.utilities.utf8_encode_headers(as_bytes)
    assert isinstance(utf8_encode_headers(as_bytes)[1], NeverIndexedHeaderTuple)
    assert utf8_encode_headers(mixed) == [(b":status", b"200"), (b"x-a", "é".encode())]


@pytest.mark.parametrize("end_stream", [False, True])
@pytest.mark.parametrize("size", [0, 1, 16384, 300_000])
def test_data_frames_go_out_byte_for_byte_as_h2_would_send_them(
    size: int, end_stream: bool
) -> None:
    """DATA skips hyperframe's serializer (one copy instead of three); the wire is identical,
    from bytes or from a view of a reused buffer."""
    wires = []
    for cls, wrap in ((h2.connection.H2Connection, bytes), (FastH2Connection, memoryview)):
        conn = cls(h2.config.H2Configuration(client_side=True, header_encoding=None))
        conn.initiate_connection()
        headers = [(b":method", b"CONNECT"), (b":authority", b"db.shop.global:5432")]
        conn.send_headers(1, headers)
        server = H2ServerSession()  # advertises 1 MiB frames and windows
        server.receive_data(conn.data_to_send())
        conn.receive_data(server.data_to_send())
        conn.data_to_send()
        payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
        conn.send_data(1, wrap(payload), end_stream=end_stream)
        wires.append(conn.data_to_send())
    assert wires[0] == wires[1]
    assert len(wires[1]) == 9 + size
