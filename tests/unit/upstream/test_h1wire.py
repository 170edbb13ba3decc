"""HTTP/1.1 client wire format: the checks h11 made, and RFC 9112 framing."""

from __future__ import annotations

import pytest

from proxy.upstream import h1wire
from proxy.upstream.h1wire import WireError


def test_request_head_is_serialized_with_its_framing() -> None:
    head, length = h1wire.request_head(
        b"POST", b"/a?b=1", [(b"host", b"x"), (b"content-length", b"5")]
    )
    assert head == b"POST /a?b=1 HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\n"
    assert length == 5
    assert h1wire.request_head(b"GET", b"/", [(b"transfer-encoding", b"chunked")])[1] is None
    assert h1wire.request_head(b"GET", b"/", []) == (b"GET / HTTP/1.1\r\n\r\n", 0)
    spaced = [(b"user-agent", b"a b\xff"), (b"x-trace", b"00-ab-01")]
    assert h1wire.request_head(b"GET", b"/", spaced)[0] == (
        b"GET / HTTP/1.1\r\nuser-agent: a b\xff\r\nx-trace: 00-ab-01\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("method", "target", "headers"),
    [
        (b"GE T", b"/", []),
        (b"GET", b"/a b", []),
        (b"GET", b"/", [(b"x-a", b"one\r\nx-injected: 1")]),
        (b"GET", b"/", [(b"bad name", b"v")]),
        (b"GET", b"/", [(b"x-a", b" padded")]),
        (b"GET", b"/", [(b"traceparent", b"00-ab\x00-01")]),
        (b"GET", b"/", [(b"traceparent", b"00-ab-01\t")]),
        (b"GET", b"/", [(b"content-length", b"1, 2")]),
        (b"GET", b"/", [(b"transfer-encoding", b"gzip")]),
    ],
)
def test_request_heads_that_could_smuggle_or_break_framing_are_refused(
    method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    with pytest.raises(WireError):
        h1wire.request_head(method, target, headers)


def test_response_head_parses_lowercases_and_unfolds() -> None:
    raw = bytearray(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Long: a\r\n  b\r\n\r\nbody")
    version, status, headers, consumed = h1wire.parse_response_head(raw) or (b"", 0, [], 0)
    assert (version, status) == (b"1.1", 200)
    assert headers == [(b"content-type", b"text/plain"), (b"x-long", b"a b")]
    assert raw[consumed:] == b"body"
    assert h1wire.parse_response_head(bytearray(b"HTTP/1.1 200 OK\r\nx: 1\r\n")) is None


def test_bad_or_oversized_response_heads_are_errors() -> None:
    with pytest.raises(WireError):
        h1wire.parse_response_head(bytearray(b"HTTP/1.1 20 OK\r\n\r\n"))
    with pytest.raises(WireError):
        h1wire.parse_response_head(bytearray(b"HTTP/1.1 200 OK\r\nno-colon\r\n\r\n"))
    with pytest.raises(WireError):
        h1wire.parse_response_head(bytearray(b"HTTP/1.1 200 OK\r\n" + b"x: y\r\n" * 4000))


def test_response_framing_follows_rfc_9112() -> None:
    assert h1wire.response_framing(b"GET", 204, [(b"content-length", b"5")]) == 0
    assert h1wire.response_framing(b"HEAD", 200, [(b"content-length", b"5")]) == 0
    assert h1wire.response_framing(b"GET", 200, [(b"transfer-encoding", b"chunked")]) is None
    assert h1wire.response_framing(b"GET", 200, [(b"content-length", b"5")]) == 5
    assert h1wire.response_framing(b"GET", 200, []) is True
    assert h1wire.parse_chunk_size(bytearray(b"1a;ext=1\r\nrest")) == (26, 10)
    with pytest.raises(WireError):
        h1wire.parse_chunk_size(bytearray(b"zz\r\n"))
