"""The fast HPACK encoder: what it encodes, any standard decoder reads back unchanged."""

from __future__ import annotations

import random

import pytest
from hpack import Decoder, Encoder, NeverIndexedHeaderTuple
from hpack.exceptions import HPACKDecodingError, OversizedHeaderListError
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.protocol.hpack_fast import FastDecoder, FastEncoder


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


def test_a_never_indexed_field_is_re_encoded_never_indexed() -> None:
    block = FastEncoder().encode([NeverIndexedHeaderTuple(b"x-secret", b"s3cret")])
    assert block[0] == 0x10
    decoded = Decoder().decode(block, raw=True)
    assert isinstance(decoded[0], NeverIndexedHeaderTuple)


def test_fast_decoder_reads_what_hpack_reads_from_a_huffman_encoder_with_a_dynamic_table() -> None:
    encoder, reference, fast, rng = Encoder(), Decoder(), FastDecoder(), random.Random(5)
    for i in range(1500):
        block = encoder.encode(_headers(i, rng))
        expected = reference.decode(block, raw=True)
        got = fast.decode(block, raw=True)
        assert got == expected
        assert [type(h) for h in got] == [type(h) for h in expected]


def test_fast_decoder_refuses_an_oversized_header_list_like_hpack() -> None:
    block = Encoder().encode([(b":method", b"GET")] * 10)
    fast, reference = FastDecoder(), Decoder()
    fast.max_header_list_size = reference.max_header_list_size = 100
    with pytest.raises(OversizedHeaderListError) as fast_err:
        fast.decode(block, raw=True)
    with pytest.raises(OversizedHeaderListError) as reference_err:
        reference.decode(block, raw=True)
    assert str(fast_err.value) == str(reference_err.value)


_names = st.sampled_from([b"content-type", b"accept", b"x-a", b"user-agent", b"cookie", b"age"])
_values = st.binary(max_size=200)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(_names, _values, st.booleans()), max_size=8), min_size=1, max_size=8
    ),
    st.booleans(),
)
def test_fast_decoder_matches_hpack_on_generated_blocks(
    blocks: list[list[tuple[bytes, bytes, bool]]], huffman: bool
) -> None:
    """Literals with indexed names and short values take the fast path (Huffman strings
    through a cache); every block must decode exactly as hpack decodes it."""
    encoder, reference, fast = Encoder(), Decoder(), FastDecoder()
    for block in blocks:
        headers = [NeverIndexedHeaderTuple(n, v) if secret else (n, v) for n, v, secret in block]
        data = encoder.encode(headers, huffman=huffman)
        expected = reference.decode(data, raw=True)
        got = fast.decode(data, raw=True)
        assert got == expected
        assert [type(h) for h in got] == [type(h) for h in expected]


def test_fast_decoder_reads_our_volatile_literals_by_static_name_like_hpack() -> None:
    """Our encoder sends volatile fields (a new content-length each response) as literals
    naming a static entry past the 4-bit prefix (content-length is 28): the fast path reads
    the one-byte continuation, exactly as hpack reads the whole block."""
    encoder, reference, fast = FastEncoder(), Decoder(), FastDecoder()
    for i in range(300):
        sent = [
            (b":status", b"200"),
            (b"content-length", b"%d" % (i * 7919)),
            (b"date", b"Thu, 26 Nov 2026 01:%02d:00 GMT" % (i % 60)),
            (b"traceparent", b"00-%032x-%016x-01" % (i, i)),
            (b"x-entry-%d" % i, b"v"),  # fills the dynamic table: indexes past 142 too
        ]
        data = encoder.encode(sent)
        expected = reference.decode(data, raw=True)
        assert fast.decode(data, raw=True) == expected == sent


def test_a_repeated_block_decodes_by_the_table_as_it_is_now_like_hpack() -> None:
    """Blocks that leave the dynamic table alone are kept with their result; the same bytes
    after the table changed (a reference to index 62 now names the newer entry) must still
    decode exactly as hpack decodes them."""
    encoder, reference, fast = Encoder(), Decoder(), FastDecoder()
    stream = [
        encoder.encode([(b"x-a", b"1")]),  # inserts x-a (index 62)
        b"\xbe\x88",  # index 62 and :status 200, twice: the second is the kept result
        b"\xbe\x88",
        encoder.encode([(b"x-b", b"2")]),  # inserts x-b: 62 is x-b now, x-a 63
        b"\xbe\x88",
        b"\xbf\xbe",
        b"\x3f\x01",  # a size update to 32: evicts every entry
        b"\x88",
        b"\x88",
    ]
    for block in stream:
        expected = reference.decode(block, raw=True)
        got = fast.decode(block, raw=True)
        assert got == expected
        assert [type(h) for h in got] == [type(h) for h in expected]
    with pytest.raises(HPACKDecodingError):
        reference.decode(b"\xbe", raw=True)
    with pytest.raises(HPACKDecodingError):
        fast.decode(b"\xbe", raw=True)  # kept earlier as x-b; the table is empty now


def test_a_kept_block_is_checked_against_a_lowered_header_list_limit() -> None:
    block = Encoder().encode([NeverIndexedHeaderTuple(b"x-long", b"v" * 60)])  # not indexed
    fast = FastDecoder()
    assert fast.decode(block, raw=True) == [(b"x-long", b"v" * 60)]
    assert fast.decode(block, raw=True) == [(b"x-long", b"v" * 60)]
    fast.max_header_list_size = 50
    with pytest.raises(OversizedHeaderListError):
        fast.decode(block, raw=True)


def _literal(i: int) -> bytes:
    """A literal without indexing, new name ``x-t``, a value that differs per block (as a
    trace id does): the block is never kept whole, its runs of references are."""
    value = b"%06d" % i
    return b"\x00\x03x-t" + bytes((len(value),)) + value


def test_runs_of_references_decode_by_the_table_as_it_is_now_like_hpack() -> None:
    """A run of one-byte references is kept with its fields while the dynamic table is
    unchanged; an insertion or a resize, also earlier in the same block, must not let a
    kept run name the old entries."""
    encoder, reference, fast = Encoder(), Decoder(), FastDecoder()
    insert_a = encoder.encode([(b"x-a", b"1")])  # x-a at 62
    insert_b = encoder.encode([(b"x-b", b"2")])  # x-b at 62, x-a at 63
    stream = [
        insert_a,
        b"\x82\x87\xbe" + _literal(1),
        b"\x82\x87\xbe" + _literal(2),  # the run is kept: x-a
        insert_b + b"\x82\x87\xbe" + _literal(3),  # same run after an insertion: x-b
        b"\x82\x87\xbe" + _literal(4) + b"\xbf\x84",
        b"\x82\x87\xbe" + _literal(5) + b"\xbf\x84",
        b"\x82\xbe" + _literal(55),  # kept as x-b, then evicted by the update below
        b"\x3f\x01" + b"\x82\x87" + _literal(6),  # a size update to 32 evicts both
        b"\x82\x87" + _literal(7),
    ]
    for block in stream:
        expected = reference.decode(block, raw=True)
        got = fast.decode(block, raw=True)
        assert got == expected
        assert [type(h) for h in got] == [type(h) for h in expected]
    for block in (b"\x82\xbe" + _literal(8), b"\x82\x87\xbe\x84" + _literal(9)):
        with pytest.raises(HPACKDecodingError):
            reference.decode(block, raw=True)
        with pytest.raises(HPACKDecodingError):
            fast.decode(block, raw=True)  # x-a and x-b were evicted: not in the table


def test_a_kept_run_counts_toward_the_header_list_limit() -> None:
    fast = FastDecoder()
    block = b"\x82\x87\x84\x86" + _literal(1)
    assert len(fast.decode(block, raw=True)) == 5
    fast.max_header_list_size = 100
    with pytest.raises(OversizedHeaderListError):
        fast.decode(b"\x82\x87\x84\x86" + _literal(2), raw=True)
