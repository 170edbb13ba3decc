"""The leader's kept world: the later of two records of a cluster wins, whichever way it came."""

from __future__ import annotations

import json

from federation.model.api import HealthReport
from federation.service.world_view import WorldView
from federation.store import ReportRecord, WorldRecords


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
    assert view.parse(later) is parsed
    newer = record("a", 4.0, 8)
    view.stored_all([newer])
    assert view.parse(newer).sequence == 8
