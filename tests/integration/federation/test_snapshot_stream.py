"""The snapshot stream ``POST /v1/clusters/{c}/stream`` against a real federation (hypercorn,
TLS 1.3, HTTP/2): pushes, ACKs and reports on one stream, the same authentication and
validation as the REST API, and the end of a stream when its token expires."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from federation.client.h2duplex import DuplexRefused, DuplexRequest, DuplexStream, open_duplex
from federation.model import HealthReport, Snapshot
from federation.model.routing import RoutingModel
from federation.model.routing_delta import apply_delta
from federation.service import pinned_client_context
from federation.service.server import RunningFederation
from tests.integration.federation.conftest import (
    FakeCluster,
    fed_config,
    joined,
    start_federation,
)

CHECKOUT = {
    "name": "checkout.shop",
    "endpoints": [{"address": "127.0.0.1:8080", "healthy": True}],
    "allowed_sources": ["*"],
}


async def open_stream(
    fed: RunningFederation,
    nursery: trio.Nursery,
    cluster: FakeCluster,
    *,
    path_cluster: str | None = None,
    authorization: str | None = None,
    query: str = "",
) -> DuplexStream:
    headers = [("content-type", "application/x-ndjson")]
    authorization = f"Bearer {cluster.jwt()}" if authorization is None else authorization
    if authorization:
        headers.append(("authorization", authorization))
    url = f"{fed.url}/v1/clusters/{path_cluster or cluster.name}/stream{query}"
    context = pinned_client_context(fed.ca_pem, fed.ca_fingerprint)
    return await open_duplex(DuplexRequest(url, tuple(headers)), context, nursery)


async def message(stream: DuplexStream, kind: str | None = None, timeout: float = 5) -> Any:
    """The next message (of type ``kind``, skipping others), bounded in time."""
    with trio.fail_after(timeout):
        while True:
            doc = json.loads(await stream.receive_line())
            if kind is None or doc["type"] == kind:
                return doc


async def answer(stream: DuplexStream) -> Any:
    """The next answer (ok or error), skipping the pushes a report may cause meanwhile."""
    while (doc := await message(stream))["type"] in ("snapshot", "bundles", "bundles_delta"):
        pass
    return doc


async def send(stream: DuplexStream, doc: object) -> None:
    await stream.send(json.dumps(doc).encode() + b"\n")


async def joined_and_built(
    federation: RunningFederation, api: httpx.AsyncClient, *names: str
) -> dict[str, FakeCluster]:
    """:func:`joined`, then wait until every cluster's snapshot carries every joined bundle
    (joins are built in bursts, after a short pause: a stream opened sooner sees them later)."""
    clusters = await joined(federation, api, *names)
    domains = [f'"{name}.isthmus.test"'.encode() for name in names]
    with trio.fail_after(10):
        for name in names:
            after = -1
            while True:
                served = await federation.service.publisher.wait_newer(name, after, 10)
                assert served is not None
                if all(domain in served.body for domain in domains):
                    break
                after = served.version
    return clusters


async def served_with(fed: RunningFederation, cluster: str, *trust_domains: str) -> Snapshot:
    """``cluster``'s served snapshot once it relays every one of ``trust_domains`` (a join
    returns before the rebuild that adds its trust domain to the other clusters' snapshots)."""
    publisher, seen = fed.service.publisher, -1
    with trio.fail_after(5):
        while True:  # bounded by the deadline; each turn waits for a newer version
            served = await publisher.wait_newer(cluster, seen, 5)
            assert served is not None
            seen = served.version
            snapshot = Snapshot.model_validate_json(served.body)
            if set(trust_domains) <= set(snapshot.bundles):
                return snapshot


def report(sequence: int, healthy: bool = True) -> dict[str, Any]:
    service = {**CHECKOUT, "endpoints": [{"address": "127.0.0.1:8080", "healthy": healthy}]}
    return {"sequence": sequence, "sent_at": time.time(), "services": [service]}


async def test_stream_pushes_bundles_once_then_routing_only(
    federation: RunningFederation, api: httpx.AsyncClient, nursery: trio.Nursery
) -> None:
    clusters = await joined_and_built(federation, api, "aws", "gcp")
    aws = await open_stream(federation, nursery, clusters["aws"])
    gcp = await open_stream(federation, nursery, clusters["gcp"])
    first = await message(aws)
    assert first["type"] == "bundles"
    assert set(first["bundles"]) == {"aws.isthmus.test", "gcp.isthmus.test"}
    assert (await message(aws))["type"] == "snapshot"
    await send(gcp, {"type": "report", "id": 1, "report": report(1)})
    assert await message(gcp, "ok") == {"type": "ok", "id": 1}
    with trio.fail_after(5):
        while True:  # a health change: routing only, no bundles again
            pushed = await message(aws)
            assert pushed["type"] == "snapshot", pushed
            if pushed["routing"]["services"]:
                break
    assert pushed["routing"]["services"][0]["priorities"][0]["weights"] == {"gcp": 1}
    # the pushed routing plus the bundles sent on open IS the snapshot the long-poll serves
    served = await api.get(
        "/v1/clusters/aws/snapshot", params={"after": -1}, headers=clusters["aws"].auth()
    )
    expected = Snapshot.model_validate_json(served.content)
    assert expected.version == pushed["version"]
    assert expected.routing.model_dump(mode="json") == pushed["routing"]
    assert expected.bundles == first["bundles"]
    assert expected.bundle_updates == first["bundle_updates"]
    await send(gcp, {"type": "report", "report": report(2, healthy=False)})
    while (pushed := await message(aws))["routing"]["services"]:
        assert pushed["type"] == "snapshot"
    await aws.aclose()
    await gcp.aclose()


async def test_acks_and_reports_on_the_stream_are_stored_and_answered(
    federation: RunningFederation, api: httpx.AsyncClient, nursery: trio.Nursery
) -> None:
    clusters = await joined(federation, api, "aws")
    stream = await open_stream(federation, nursery, clusters["aws"])
    version = (await message(stream, "snapshot"))["version"]
    await send(stream, {"type": "ack", "id": 7, "ack": {"version": version, "ok": True}})
    assert await answer(stream) == {"type": "ok", "id": 7}
    await send(stream, {"type": "report", "report": report(1)})  # no id: no answer
    await send(stream, {"type": "ack", "id": 8, "ack": {"version": version, "ok": True}})
    assert await answer(stream) == {"type": "ok", "id": 8}  # in order: the report is stored
    store = federation.service.store
    assert (await store.get_ack_state("aws")).acked_version == version
    stored = await store.get_report("aws")
    assert stored is not None and json.loads(stored.report)["sequence"] == 1
    # a line that only looks like the usual form (a second "report" key) is parsed whole:
    # whatever is stored is one valid report, never the text between
    first, second = json.dumps(report(2)), json.dumps(report(3))
    await stream.send(b'{"type":"report","id":9,"report":%s,"report":%s}\n' % (
        first.encode(), second.encode()))  # fmt: skip
    assert await answer(stream) == {"type": "ok", "id": 9}
    stored = await store.get_report("aws")
    assert stored is not None
    assert HealthReport.model_validate_json(stored.report).sequence in (1, 2, 3)
    await stream.aclose()


async def test_bad_messages_get_an_error_naming_the_problem_and_store_nothing(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    fed = await start_federation(nursery, fed_config(tmp_path, max_body_bytes=2048))
    context = pinned_client_context(fed.ca_pem, fed.ca_fingerprint)
    async with httpx.AsyncClient(base_url=fed.url, verify=context, http2=True) as api:
        clusters = await joined(fed, api, "aws")
    stream = await open_stream(fed, nursery, clusters["aws"])
    version = (await message(stream, "snapshot"))["version"]
    bad: list[tuple[object, str, str]] = [
        ({"type": "report", "id": 1, "report": {**report(1), "bogus": 1}}, "report.bogus", ""),
        (
            {"type": "report", "id": 2, "report": {**report(1), "sequence": "x"}},
            "report.sequence",
            "",
        ),
        ({"type": "gossip", "id": 3}, "", "invalid"),
        (
            {"type": "ack", "id": 4, "ack": {"version": version + 5, "ok": True}},
            "",
            "unknown-version",
        ),
        (
            {"type": "report", "id": 5, "report": {**report(1), "services": [CHECKOUT] * 30}},
            "",
            "too-large",
        ),
    ]
    for doc, field, reason in bad:
        await send(stream, doc)
        error = await answer(stream)
        assert error["type"] == "error" and error["id"] == doc["id"], error  # type: ignore[index]
        if field:
            assert field in [f["field"] for f in error["fields"]] and field in error["message"]
        assert error["reason"] == (reason or "invalid")
    await stream.send(b"{not json\n")
    assert (await answer(stream))["reason"] == "invalid"
    assert await fed.service.store.get_report("aws") is None  # nothing stored
    assert (await fed.service.store.get_ack_state("aws")).acked_version == 0
    await stream.aclose()


async def test_opening_is_authenticated_like_the_rest_api(
    federation: RunningFederation, api: httpx.AsyncClient, nursery: trio.Nursery
) -> None:
    clusters = await joined(federation, api, "aws", "gcp")
    aws, gcp = clusters["aws"], clusters["gcp"]
    cases = [
        (dict(authorization=""), 401, "no-credential"),
        (dict(authorization=f"Bearer {aws.jwt(audience='someone-else')}"), 401, "bad-jwt"),
        (dict(path_cluster="aws", authorization=f"Bearer {gcp.jwt()}"), 403, "not-your-cluster"),
        (dict(query="?after=soon"), 422, "invalid"),
    ]
    for kwargs, status, reason in cases:
        with pytest.raises(DuplexRefused) as info:
            await open_stream(federation, nursery, aws, **kwargs)
        assert info.value.status == status
        assert json.loads(info.value.body)["error"]["reason"] == reason


async def test_the_stream_ends_when_its_token_expires(
    federation: RunningFederation, api: httpx.AsyncClient, nursery: trio.Nursery
) -> None:
    clusters = await joined(federation, api, "aws")
    token = clusters["aws"].jwt(ttl=2)
    stream = await open_stream(
        federation, nursery, clusters["aws"], authorization=f"Bearer {token}"
    )
    end = await message(stream, "end", timeout=6)
    assert end["reason"] == "token-expired"
    with trio.fail_after(5), pytest.raises(Exception, match="ended"):
        await stream.receive_line()
    await stream.aclose()


async def test_a_reconnect_naming_what_it_holds_gets_nothing_again(
    federation: RunningFederation, api: httpx.AsyncClient, nursery: trio.Nursery
) -> None:
    clusters = await joined(federation, api, "aws")
    stream = await open_stream(federation, nursery, clusters["aws"])
    digest = (await message(stream, "bundles"))["digest"]
    version = (await message(stream, "snapshot"))["version"]
    await stream.aclose()
    query = f"?after={version}&bundles={digest}"
    again = await open_stream(federation, nursery, clusters["aws"], query=query)
    await send(again, {"type": "ack", "id": 1, "ack": {"version": version, "ok": True}})
    assert await message(again) == {"type": "ok", "id": 1}  # no bundles, no snapshot first
    await again.aclose()


async def test_a_join_sends_open_streams_only_the_new_trust_domain(
    federation: RunningFederation, api: httpx.AsyncClient, nursery: trio.Nursery
) -> None:
    clusters = await joined(federation, api, "aws", "gcp")
    await served_with(federation, "aws", "aws.isthmus.test", "gcp.isthmus.test")
    aws = await open_stream(federation, nursery, clusters["aws"])
    first = await message(aws)
    assert set(first["bundles"]) == {"aws.isthmus.test", "gcp.isthmus.test"}
    assert (await message(aws))["type"] == "snapshot"
    clusters |= await joined(federation, api, "azure")
    joined_at = (await served_with(federation, "aws", "azure.isthmus.test")).bundles
    change = await message(aws)
    assert change["type"] == "bundles_delta", change
    assert change["base"] == first["digest"]
    assert change["bundles"] == {"azure.isthmus.test": joined_at["azure.isthmus.test"]}
    assert change["bundle_updates"] == {}
    assert (await message(aws))["type"] == "snapshot"
    await aws.aclose()
    # a gateway reconnecting with the older set gets the same delta; one holding none, the set
    again = await open_stream(
        federation, nursery, clusters["aws"], query=f"?bundles={first['digest']}"
    )
    assert await message(again) == change
    await again.aclose()
    fresh = await open_stream(federation, nursery, clusters["aws"])
    full = await message(fresh)
    assert full["type"] == "bundles" and full["bundles"] == joined_at
    await fresh.aclose()


async def test_a_gateway_asking_for_deltas_gets_changes_against_what_it_acked(
    federation: RunningFederation, api: httpx.AsyncClient, nursery: trio.Nursery
) -> None:
    clusters = await joined_and_built(federation, api, "aws", "gcp")
    aws = await open_stream(federation, nursery, clusters["aws"], query="?deltas=1")
    gcp = await open_stream(federation, nursery, clusters["gcp"])
    first = await message(aws, "snapshot")  # the first routing is always whole
    await send(aws, {"type": "ack", "id": 1, "ack": {"version": first["version"], "ok": True}})
    assert await answer(aws) == {"type": "ok", "id": 1}
    await send(gcp, {"type": "report", "id": 1, "report": report(1)})
    assert await message(gcp, "ok") == {"type": "ok", "id": 1}
    with trio.fail_after(5):
        pushed = await message(aws)
    assert pushed["type"] == "delta", pushed
    assert pushed["base"] == first["version"]
    held = RoutingModel.model_validate(first["routing"])
    served = await api.get(
        "/v1/clusters/aws/snapshot", params={"after": -1}, headers=clusters["aws"].auth()
    )
    expected = Snapshot.model_validate_json(served.content)
    assert expected.version == pushed["version"]
    assert apply_delta(held, pushed["routing"]) == expected.routing
    # a gateway that cannot apply it NACKs it: the version comes again, whole
    nack = {"version": pushed["version"], "ok": False, "error": "no base"}
    await send(aws, {"type": "ack", "ack": nack})
    again = await message(aws, "snapshot")
    assert again["version"] == pushed["version"]
    assert RoutingModel.model_validate(again["routing"]) == expected.routing
    await aws.aclose()
    await gcp.aclose()
