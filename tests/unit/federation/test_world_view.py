"""The leader's kept world: the later of two records of a cluster wins, whichever way it came."""

from __future__ import annotations

import json

from federation.model import EndpointHealth, Locality, ServiceHealth
from federation.model.api import HealthReport
from federation.service.served import member_key, report_key
from federation.service.world_view import WorldView
from federation.store import ClusterRecord, ReportRecord, WorldRecords


def record(cluster: str, at: float, sequence: int = 1) -> ReportRecord:
    return ReportRecord(cluster, at, json.dumps({"sequence": sequence, "sent_at": 0.0}))


def test_a_whole_read_keeps_reports_noted_after_it() -> None:
    view = WorldView()
    assert not view.complete
    view.stored(record("a", 5.0, 2))  # noted while the read was on its way
    view.stored(record("b", 1.0, 1))  # older than what the read returns
    view.replace(WorldRecords([], [record("a", 4.0), record("b", 2.0, 3)], []))
    assert view.complete
    assert view.reports["a"].received_at == 5.0 and view.reports["b"].received_at == 2.0
    view.invalidate()
    assert not view.complete


def test_an_earlier_record_is_ignored_and_a_report_is_parsed_once_per_text() -> None:
    view = WorldView()
    later = record("a", 3.0, 7)
    parsed = HealthReport.model_validate_json(later.report)
    view.stored(later, parsed)
    view.stored(record("a", 2.0, 6))
    assert view.reports["a"] is later
    assert view.parse(later)[0] is parsed
    newer = record("a", 4.0, 8)
    view.stored_all([newer])
    assert view.parse(newer)[0].sequence == 8


def _report(healthy: bool, in_flight: int) -> HealthReport:
    endpoint = EndpointHealth(address="127.0.0.1:8080", healthy=healthy)
    service = ServiceHealth(name="svc.ns", endpoints=(endpoint,), in_flight=in_flight)
    return HealthReport(sequence=in_flight, sent_at=0.0, services=(service,))


def test_a_member_is_kept_while_its_registration_and_routing_key_are() -> None:
    view = WorldView()
    cluster = ClusterRecord(
        name="a",
        trust_domain="a.test",
        locality=Locality(cloud="c", region="r"),
        gateway_addresses=("127.0.0.1:1",),
    )
    first = _report(True, 1)
    member, key = view.member(cluster, first, report_key(first))
    assert key == member_key(member) and member.services == first.services
    load_only = _report(True, 2)  # only load metrics moved: the same member
    assert view.member(cluster, load_only, report_key(load_only))[0] is member
    flipped = _report(False, 2)
    changed, changed_key = view.member(cluster, flipped, report_key(flipped))
    assert changed.services == flipped.services and changed_key != key
    again = cluster.model_copy()  # re-read: built anew
    assert view.member(again, flipped, report_key(flipped))[0] is not changed
    assert view.member(again, None, None)[0].services == ()
