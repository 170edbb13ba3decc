"""The fast h2 header validator accepts and rejects exactly what h2's own validator does."""

from __future__ import annotations

import random

import h2.exceptions
import h2.utilities
import pytest

from proxy.protocol.h2fast import validate_headers

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
