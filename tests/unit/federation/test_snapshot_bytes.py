"""Served snapshot bytes: encoded once, byte-identical to pydantic's JSON, valid gzip."""

from __future__ import annotations

import gzip

import pytest

from federation.model import EndpointHealth, Locality, ServiceHealth, Snapshot
from federation.service.leases import LeaseInput, assess_reachability
from federation.service.snapshot_bytes import (
    SectionCache,
    SnapshotEncoder,
    accepts_gzip,
    gzip_body,
    stamp,
    stamp_body,
    stored_content,
)
from federation.service.snapshots import MemberView, plan_snapshots, with_version


def _snapshots(count: int, bundle_extra: str = "") -> list[Snapshot]:
    service = ServiceHealth(
        name="checkout.shop",
        endpoints=(EndpointHealth(address="127.0.0.1:8080"),),
        allowed_sources=("*",),
    )
    members = [
        MemberView(
            name=f"c{i}",
            trust_domain=f"c{i}.isthmus.test",
            locality=Locality(cloud="local", region=f"r{i}"),
            gateway_addresses=(f"127.0.0.1:{15000 + i}",),
            services=(service,),
        )
        for i in range(count)
    ]
    reach = assess_reachability(
        {m.name: LeaseInput(10.0) for m in members}, now=10.0, interval_s=1.0
    )
    bundles = {
        m.trust_domain: '{"keys":[],"ü":"\\"' + m.name + bundle_extra + '"}' for m in members
    }
    updates = {"c0.isthmus.test": "jws." + bundle_extra}
    planned = plan_snapshots(members, reach, bundles, updates, {})
    return [p.snapshot for p in planned.values()]


@pytest.mark.parametrize("version", [1, 7, 123456789])
def test_stamped_bytes_equal_pydantic_json_and_gunzip_to_them(version: int) -> None:
    encoder = SnapshotEncoder()
    for snapshot in _snapshots(4):
        content = encoder.content(snapshot)
        assert content.text == snapshot.model_dump_json()
        served = stamp(content, version)
        assert served.body == with_version(snapshot, version).model_dump_json().encode()
        assert gzip.decompress(served.gzipped) == served.body
        assert Snapshot.model_validate_json(served.body).version == version


def test_encoder_follows_a_bundle_change() -> None:
    encoder = SnapshotEncoder()
    old, new = _snapshots(2)[0], _snapshots(2, bundle_extra="rotated")[0]
    assert encoder.content(old).text == old.model_dump_json()
    assert encoder.content(new).text == new.model_dump_json()
    assert "rotated" in stamp(encoder.content(new), 3).body.decode()


def test_gzip_body_round_trips() -> None:
    body = _snapshots(3)[1].model_dump_json().encode()
    assert gzip.decompress(gzip_body(body)) == body
    assert len(gzip_body(body)) < len(body)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ("identity", False),
        ("gzip, deflate", True),
        ("br;q=1.0, GZIP;q=0.5", True),
        ("gzip;q=0", False),
        ("gzip; q=0.000", False),
        ("*", True),
    ],
)
def test_accepts_gzip(header: str | None, expected: bool) -> None:
    assert accepts_gzip(header) is expected


def test_served_content_builds_the_same_bytes_and_stream_messages_as_a_ready_body() -> None:
    from federation.service.served import ServedSnapshot
    from federation.service.stream_push import PushEncoder

    encoder = SnapshotEncoder()
    lazy, ready = PushEncoder(), PushEncoder()
    for snapshot in _snapshots(3):
        content = encoder.content(snapshot)
        whole = stamp(content, 5)
        served = ServedSnapshot(5, "d", None, 0.0, content=content)
        assert served.body == whole.body == stamp_body(content, 5)
        assert gzip.decompress(served.gzipped) == whole.body
        cluster = snapshot.routing.cluster
        got, want = lazy.push_served(cluster, served), ready.push(cluster, 5, whole.body)
        assert (got.version, got.snapshot_line, got.bundles) == (
            want.version,
            want.snapshot_line,
            want.bundles,
        )
        assert ServedSnapshot(5, "d", whole.body, 0.0).routing_parts() is None


def test_stored_text_is_served_without_parsing_when_canonical() -> None:
    sections = SectionCache()
    first, second = (encoder_text(s) for s in _snapshots(2))
    a, b = stored_content(first, sections), stored_content(second, sections)
    assert a is not None and b is not None
    assert a.text == first and b.text == second
    assert a.shared is b.shared  # one section object for the snapshots of one rebuild
    assert stored_content('{"version":3,"routing":{}}', sections) is None
    assert stored_content(first.replace(',"bundles":{', ',"bundlez":{'), sections) is None


def encoder_text(snapshot: Snapshot) -> str:
    return SnapshotEncoder().content(snapshot).text
