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


def _completed_head(
    method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], authority: bytes, body: bool
) -> tuple[bytes, int | None]:
    """What a client connection sent before ``request_head_for``: the completed list."""
    names = {name for name, _ in headers}
    if b"host" not in names:
        headers = [(b"host", authority), *headers]
    if body and not names & {b"content-length", b"transfer-encoding"}:
        headers = [*headers, (b"transfer-encoding", b"chunked")]
    return h1wire.request_head(method, target, headers)


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ([], False),
        ([], True),
        ([(b"x-a", b"1"), (b"traceparent", b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01")], False),
        ([(b"host", b"given"), (b"content-length", b"5")], True),
        ([(b"Content-Length", b"5")], True),  # not ours to recognise: chunked is added
        ([(b"transfer-encoding", b"chunked"), (b"x-b", b"2")], True),
        ([(b"connection", b"keep-alive")], False),
    ],
)
def test_request_head_for_matches_the_completed_list(
    headers: list[tuple[bytes, bytes]], body: bool
) -> None:
    head, length, closes = h1wire.request_head_for(b"POST", b"/p", headers, b"svc:80", body)
    assert (head, length) == _completed_head(b"POST", b"/p", headers, b"svc:80", body)
    assert not closes


def test_request_head_for_reports_connection_close() -> None:
    close = [(b"connection", b"keep-alive, Close")]
    assert h1wire.request_head_for(b"GET", b"/", close, b"a", False)[2]
    assert not h1wire.request_head_for(b"GET", b"/", [(b"x-close", b"close")], b"a", False)[2]


@pytest.mark.parametrize(
    ("method", "target", "headers", "authority"),
    [
        (b"GE T", b"/", [], b"a"),
        (b"GET", b"/a b", [], b"a"),
        (b"GET", b"/", [], b"bad\r\nhost"),
        (b"GET", b"/", [(b"x-a", b"one\r\nx-injected: 1")], b"a"),
        (b"GET", b"/", [(b"bad name", b"v")], b"bad\x00host"),  # the host's error comes first
        (b"GET", b"/", [(b"content-length", b"1, 2")], b"a"),
        (b"GET", b"/", [(b"content-length", b"1"), (b"content-length", b"2")], b"a"),
        (b"GET", b"/", [(b"transfer-encoding", b"gzip")], b"a"),
    ],
)
def test_request_head_for_refuses_as_request_head_does(
    method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], authority: bytes
) -> None:
    with pytest.raises(WireError) as expected:
        _completed_head(method, target, headers, authority, False)
    with pytest.raises(WireError) as got:
        h1wire.request_head_for(method, target, headers, authority, False)
    assert str(got.value) == str(expected.value)


_HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: 1\r\n\r\n"


@pytest.mark.parametrize("repeat", [1, 2])  # the second time from the remembered head
def test_parse_response_gives_framing_and_keep_alive(repeat: int) -> None:
    for _ in range(repeat):
        parsed = h1wire.parse_response(bytearray(_HEAD + b"hello"), b"GET")
    assert parsed == (200, [(b"content-length", b"5"), (b"x-a", b"1")], len(_HEAD), 5, False)
    assert parsed is not None
    parsed[1].append((b"x-mutated", b"1"))  # each caller gets its own list
    again = h1wire.parse_response(bytearray(_HEAD), b"GET")
    assert again is not None and again[1] == [(b"content-length", b"5"), (b"x-a", b"1")]
    assert h1wire.parse_response(bytearray(_HEAD), b"HEAD") == (200, again[1], len(_HEAD), 0, False)
    assert h1wire.parse_response(bytearray(_HEAD[:-2]), b"GET") is None


@pytest.mark.parametrize("repeat", [1, 2])
@pytest.mark.parametrize(
    ("head", "method", "remaining", "closes"),
    [
        (b"HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n", b"GET", 0, False),
        (b"HTTP/1.1 304 Not Modified\r\n\r\n", b"GET", 0, False),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", b"GET", None, False),
        (b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\n", b"GET", 1, True),
        (b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n", b"GET", 1, True),
        (b"HTTP/1.1 200 OK\r\nx-a: 1\r\n\r\n", b"GET", True, True),  # until close
        (b"HTTP/1.1 200 OK\r\nx-a: 1\r\n\r\n", b"HEAD", 0, False),
        (b"HTTP/1.1 100 Continue\r\n\r\n", b"GET", 0, False),
    ],
)
def test_parse_response_framing_by_status_method_and_version(
    repeat: int, head: bytes, method: bytes, remaining: int | bool | None, closes: bool
) -> None:
    for _ in range(repeat):
        parsed = h1wire.parse_response(bytearray(head), method)
        assert parsed is not None
        assert parsed[3:] == (remaining, closes)


def test_parse_response_rechecks_a_head_whose_framing_is_invalid() -> None:
    bad = b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n"
    parsed = h1wire.parse_response(bytearray(bad), b"HEAD")  # HEAD: no body, no framing
    assert parsed is not None and parsed[3] == 0
    for _ in range(2):
        with pytest.raises(WireError, match="conflicting Content-Length"):
            h1wire.parse_response(bytearray(bad), b"GET")
    assert h1wire.parse_response(bytearray(bad), b"HEAD") is not None
    with pytest.raises(WireError, match="too long"):
        h1wire.parse_response(bytearray(b"HTTP/1.1 200 OK\r\n" + b"x: y\r\n" * 4000), b"GET")
