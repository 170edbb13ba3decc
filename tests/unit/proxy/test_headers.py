"""Header hygiene, trace context and local replies: exact inputs, exact outputs."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from proxy.routes import (
    clean_response,
    from_local_client,
    from_peer_gateway,
    not_found_response,
    parse_traceparent,
    strip_hop_by_hop,
    unavailable_response,
)
from proxy.routes.headers import traced_from_local_client, traced_from_peer_gateway

PARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def names(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [name for name, _ in headers]


def test_hop_by_hop_and_connection_listed_headers_are_stripped() -> None:
    headers = [
        (b":method", b"GET"),
        (b"connection", b"keep-alive, X-Secret"),
        (b"keep-alive", b"timeout=5"),
        (b"proxy-connection", b"keep-alive"),
        (b"transfer-encoding", b"chunked"),
        (b"upgrade", b"websocket"),
        (b"te", b"gzip"),
        (b"proxy-authorization", b"Basic eA=="),
        (b"proxy-authenticate", b"Basic"),
        (b"trailer", b"x-sum"),
        (b"x-secret", b"1"),
        (b"accept", b"*/*"),
    ]
    assert strip_hop_by_hop(headers) == [(b":method", b"GET"), (b"accept", b"*/*")]
    assert strip_hop_by_hop([(b"te", b"trailers")], keep_te_trailers=True) == [(b"te", b"trailers")]
    assert strip_hop_by_hop([(b"te", b"trailers")]) == []
    assert clean_response([(b"connection", b"close"), (b"content-length", b"2")]) == [
        (b"content-length", b"2")
    ]


def test_local_client_spoofed_isthmus_headers_are_dropped_and_ours_added() -> None:
    headers = [
        (b":method", b"GET"),
        (b":authority", b"checkout.shop.global"),
        (b"x-isthmus-source-cluster", b"prod-admin"),
        (b"X-Isthmus-Source-Identity".lower(), b"spiffe://evil/ns/x/sa/y"),
        (b"x-isthmus-anything", b"1"),
        (b"x-forwarded-for", b"192.0.2.1"),
        (b"x-forwarded-proto", b"https"),
        (b"te", b"trailers"),
        (b"traceparent", PARENT),
        (b"tracestate", b"vendor=1"),
    ]
    out = from_local_client(
        headers, client_ip="10.1.2.3", proto="http", local_cluster="aws-use1", rng=random.Random(1)
    )
    span = out[3][1][36:52]
    assert out == [
        (b":method", b"GET"),
        (b":authority", b"checkout.shop.global"),
        (b"te", b"trailers"),
        (b"traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-" + span + b"-01"),
        (b"tracestate", b"vendor=1"),
        (b"x-forwarded-for", b"192.0.2.1, 10.1.2.3"),
        (b"x-forwarded-proto", b"http"),
        (b"x-isthmus-source-cluster", b"aws-use1"),
    ]
    assert span != b"00f067aa0ba902b7" and parse_traceparent(out[3][1]) is not None


def test_missing_or_invalid_traceparent_starts_a_sampled_trace() -> None:
    for bad in ([], [(b"traceparent", b"garbage")], [(b"traceparent", PARENT)] * 2):
        out = from_local_client(
            [*bad, (b"tracestate", b"v=1")],
            client_ip="10.0.0.9",
            proto="http",
            local_cluster="a",
            rng=random.Random(2),
        )
        traces = [v for n, v in out if n == b"traceparent"]
        assert len(traces) == 1
        parsed = parse_traceparent(traces[0])
        assert parsed is not None and parsed[2] == b"01"
        assert parsed[0] != b"4bf92f3577b34da6a3ce929d0e0e4736"
        assert b"tracestate" not in names(out)  # it belonged to the discarded trace
        assert (b"x-forwarded-for", b"10.0.0.9") in out


def test_traceparent_validation() -> None:
    assert parse_traceparent(PARENT) == (
        b"4bf92f3577b34da6a3ce929d0e0e4736",
        b"00f067aa0ba902b7",
        b"01",
    )
    assert parse_traceparent(PARENT.upper()) is None
    assert parse_traceparent(b"ff" + PARENT[2:]) is None
    assert parse_traceparent(b"00-" + b"0" * 32 + PARENT[35:]) is None
    assert parse_traceparent(PARENT[:36] + b"0" * 16 + b"-01") is None
    assert parse_traceparent(PARENT + b"-extra") is None  # version 00 has exactly 4 fields
    assert parse_traceparent(b"01" + PARENT[2:] + b"-extra") is not None
    assert parse_traceparent(PARENT[:-1]) is None
    assert parse_traceparent(PARENT[:-2] + b"-1") is None  # a dash where the flags go


def test_peer_gateway_source_headers_come_from_the_verified_identity() -> None:
    headers = [
        (b":method", b"POST"),
        (b"x-isthmus-source-cluster", b"liar"),
        (b"x-isthmus-source-identity", b"spiffe://liar/isthmus/gateway/liar"),
        (b"x-isthmus-source-cluster", b"liar2"),
        (b"x-forwarded-for", b"10.1.2.3"),
        (b"traceparent", PARENT),
        (b"connection", b"close"),
    ]
    out = from_peer_gateway(
        headers,
        peer_cluster="gcp-euw1",
        peer_identity="spiffe://gcp.example/isthmus/gateway/gcp-euw1",
        rng=random.Random(3),
    )
    assert names(out) == [
        b":method",
        b"traceparent",
        b"x-forwarded-for",
        b"x-isthmus-source-cluster",
        b"x-isthmus-source-identity",
    ]
    assert out[-2:] == [
        (b"x-isthmus-source-cluster", b"gcp-euw1"),
        (b"x-isthmus-source-identity", b"spiffe://gcp.example/isthmus/gateway/gcp-euw1"),
    ]
    assert out[1][1].startswith(b"00-4bf92f3577b34da6a3ce929d0e0e4736-")
    assert out[1][1] != PARENT


@given(st.sampled_from([[], [PARENT], [b"01" + PARENT[2:] + b"-x"], [b"garbage"], [PARENT] * 2]))
def test_traced_variants_give_the_trace_id_they_send(traces: list[bytes]) -> None:
    headers = [(b"accept", b"*/*"), *((b"traceparent", t) for t in traces)]
    local, trace_id = traced_from_local_client(
        headers, client_ip="10.0.0.1", proto="http", local_cluster="a", rng=random.Random(4)
    )
    assert local == from_local_client(
        headers, client_ip="10.0.0.1", proto="http", local_cluster="a", rng=random.Random(4)
    )
    sent = [v for n, v in local if n == b"traceparent"]
    assert len(sent) == 1 and trace_id == sent[0][3:35].decode()
    if len(traces) == 1 and traces[0] != b"garbage":  # continued: same trace, new span
        assert sent[0][:36] == b"00" + traces[0][2:36] and sent[0][36:52] != traces[0][36:52]
        assert sent[0][52:] == b"-01"
    peer, peer_trace = traced_from_peer_gateway(
        headers, peer_cluster="b", peer_identity="id", rng=random.Random(5)
    )
    assert peer == from_peer_gateway(
        headers, peer_cluster="b", peer_identity="id", rng=random.Random(5)
    )
    assert peer_trace == next(v for n, v in peer if n == b"traceparent")[3:35].decode()


def test_local_replies_name_the_service_and_reason() -> None:
    status, headers, body = not_found_response("nope.shop")
    assert status == 404
    assert body == b"isthmus: no route for service 'nope.shop'\n"
    assert (b"x-isthmus-reason", b"unknown_service") in headers
    assert (b"content-length", str(len(body)).encode()) in headers
    status, headers, body = unavailable_response("no_healthy_upstream", "checkout.shop")
    assert status == 503
    assert (b"x-isthmus-reason", b"no_healthy_upstream") in headers
    assert body == (
        b"isthmus: no upstream available for service 'checkout.shop': no_healthy_upstream\n"
    )
    _, _, body = not_found_response("evil\r\nx-injected: 1")
    assert b"\r" not in body and b"\n" not in body[:-1]


header_names = st.sampled_from(
    [
        b"connection",
        b"x-isthmus-source-cluster",
        b"x-isthmus-x",
        b"traceparent",
        b"accept",
        b"te",
        b"upgrade",
        b"x-forwarded-for",
        b"x-custom",
        b":path",
    ]
)


@given(st.lists(st.tuples(header_names, st.binary(max_size=40))), st.integers(0, 2**64))
def test_local_client_never_lets_a_spoofed_header_through(
    headers: list[tuple[bytes, bytes]], seed: int
) -> None:
    out = from_local_client(
        headers, client_ip="10.0.0.1", proto="http", local_cluster="a", rng=random.Random(seed)
    )
    isthmus = [(n, v) for n, v in out if n.startswith(b"x-isthmus-")]
    assert isthmus == [(b"x-isthmus-source-cluster", b"a")]
    assert not {n for n, _ in out} & {b"connection", b"upgrade"}
    traces = [v for n, v in out if n == b"traceparent"]
    assert len(traces) == 1 and parse_traceparent(traces[0]) is not None
    assert [(n, v) for n, v in out if n == b"x-custom"] == [
        (n, v) for n, v in headers if n == b"x-custom"
    ] or any(n == b"connection" and b"x-custom" in v.lower() for n, v in headers)


def test_fault_abort_reply_says_it_was_injected() -> None:
    from proxy.routes import fault_abort_response

    status, headers, body = fault_abort_response(503)
    assert status == 503 and (b"x-isthmus-reason", b"fault_injected") in headers
    assert body == b"isthmus: fault injected: aborted with 503\n"
