"""The fast HPACK encoder: what it encodes, any standard decoder reads back unchanged."""

from __future__ import annotations

import random

from hpack import Decoder

from proxy.protocol.hpack_fast import FastEncoder


def _headers(i: int, rng: random.Random) -> list[tuple[bytes, bytes]]:
    trace = b"00-%032x-%016x-01" % (rng.getrandbits(128), rng.getrandbits(64))
    return [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":authority", b"checkout.shop.global"),
        (b":path", b"/items/%d" % i),
        (b"user-agent", b"curl/8"),
        (b"traceparent", trace),
        (b"x-custom-%d" % (i % 150), b"v" * rng.randint(0, 300)),
        (b"authorization", b"Bearer secret"),
    ]


def test_many_header_blocks_decode_to_what_was_sent_across_a_table_size_change() -> None:
    encoder, decoder, rng = FastEncoder(), Decoder(), random.Random(3)
    for i in range(2000):
        if i == 1000:  # the peer shrinks its table (SETTINGS_HEADER_TABLE_SIZE)
            encoder.header_table_size = 512
            decoder.header_table_size = 512
        sent = _headers(i, rng)
        received = [(bytes(n), bytes(v)) for n, v in decoder.decode(encoder.encode(sent), raw=True)]
        assert received == sent


def test_repeated_headers_shrink_to_index_references_and_secrets_are_never_indexed() -> None:
    encoder = FastEncoder()
    block = [(b"user-agent", b"curl/8"), (b"x-isthmus-source-cluster", b"alpha")]
    first = encoder.encode(block)
    assert len(encoder.encode(block)) == 2 < len(first)
    secret = encoder.encode([(b"authorization", b"Bearer secret")])
    assert secret[0] & 0xF0 == 0x10  # RFC 7541 §6.2.3: literal never indexed
    assert b"Bearer secret" in encoder.encode([(b"authorization", b"Bearer secret")])
