"""SPIFFE ID parsing per the spec: what is accepted, and errors that name the offending part."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.trust import SpiffeId, SpiffeIdError, TrustDomain, gateway_id, workload_id


@pytest.mark.parametrize(
    ("text", "td", "path"),
    [
        ("spiffe://example.org", "example.org", ""),
        ("spiffe://example.org/ns/web/sa/api", "example.org", "/ns/web/sa/api"),
        ("spiffe://a-b_c.d9/Upper.Case-ok_1", "a-b_c.d9", "/Upper.Case-ok_1"),
        ("spiffe://td/..a/a..", "td", "/..a/a.."),
    ],
)
def test_valid_ids_parse_and_print_back(text: str, td: str, path: str) -> None:
    sid = SpiffeId.parse(text)
    assert (sid.trust_domain.name, sid.path, str(sid)) == (td, path, text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "SPIFFE ID is empty"),
        ("example.org/x", "missing scheme"),
        ("https://example.org/x", "scheme is 'https'"),
        ("SPIFFE://example.org/x", "scheme is 'SPIFFE'"),
        ("spiffe:///x", "trust domain is empty"),
        ("spiffe://Example.org/x", "must be lowercase"),
        ("spiffe://exa mple.org", "invalid characters ' '"),
        ("spiffe://example.org:8443/x", "contains a port"),
        ("spiffe://user@example.org/x", "contains userinfo"),
        ("spiffe://example.org/x?q=1", "query strings"),
        ("spiffe://example.org/x#frag", "fragments"),
        ("spiffe://example.org/", "trailing '/'"),
        ("spiffe://example.org/x/", "empty segment"),
        ("spiffe://example.org//x", "empty segment"),
        ("spiffe://example.org/a/./b", "segment '.' is not allowed"),
        ("spiffe://example.org/a/../b", "segment '..' is not allowed"),
        ("spiffe://example.org/a%20b", "invalid characters '%'"),
        ("spiffe://example.org/caf\u00e9", "invalid characters"),
        ("spiffe://" + "a" * 256, "longer than 255"),
        ("spiffe://example.org/" + "a" * 2040, "longer than 2048 bytes"),
    ],
)
def test_invalid_ids_name_the_offending_part(text: str, message: str) -> None:
    with pytest.raises(SpiffeIdError, match=message.replace("?", r"\?").replace(".", r"\.")):
        SpiffeId.parse(text)


def test_trust_domain_parse_accepts_bare_name_or_its_id() -> None:
    assert (
        TrustDomain.parse("a.test") == TrustDomain.parse("spiffe://a.test") == TrustDomain("a.test")
    )
    with pytest.raises(SpiffeIdError, match="a trust domain has no path"):
        TrustDomain.parse("spiffe://a.test/x")


def test_ids_are_hashable_values() -> None:
    one, two = SpiffeId.parse("spiffe://a.test/x"), SpiffeId.parse("spiffe://a.test/x")
    assert one == two and len({one, two}) == 1
    assert one.trust_domain.id == SpiffeId.parse("spiffe://a.test")


def test_gateway_and_workload_helpers() -> None:
    assert str(gateway_id("aws-use1", "c1")) == "spiffe://aws-use1/isthmus/gateway/c1"
    assert str(workload_id(TrustDomain("t"), "ns1", "sa1")) == "spiffe://t/ns/ns1/sa/sa1"
    with pytest.raises(SpiffeIdError, match="cluster name 'a/b'"):
        gateway_id("t", "a/b")
    with pytest.raises(SpiffeIdError, match="namespace '..'"):
        workload_id("t", "..", "sa")


_segment = st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,15}", fullmatch=True)
_td = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,30}", fullmatch=True)


@given(_td, st.lists(_segment, max_size=5))
def test_parse_print_round_trip(td: str, segments: list[str]) -> None:
    text = f"spiffe://{td}" + "".join(f"/{s}" for s in segments)
    assert str(SpiffeId.parse(text)) == text
