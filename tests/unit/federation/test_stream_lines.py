"""``ReportReuse``: a report that repeats the stream's previous one but for its ``sequence`` and
``sent_at`` is made from it, equal to what ``model_validate_json`` returns; anything else is
validated whole (and refused the same way)."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from federation.model.api import HealthReport, ServiceHealth
from federation.service.stream_lines import ReportReuse, decode_message

SERVICES = (ServiceHealth(name="api.shop", capacity=10), ServiceHealth(name="db.shop"))


def _raw(sequence: int, sent_at: float, services: tuple[ServiceHealth, ...] = SERVICES) -> bytes:
    return (
        HealthReport(sequence=sequence, sent_at=sent_at, services=services)
        .model_dump_json()
        .encode()
    )


def test_a_renewal_equals_the_validated_report_and_skips_validation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reuse, rng = ReportReuse(), random.Random(7)
    heads = [b'{"sequence":0,"sent_at":0,', b'{"sequence":12,"sent_at":1.5e3,']
    raws = [_raw(rng.randrange(10**12), rng.uniform(0, 2e9)) for _ in range(200)]
    raws += [h + _raw(1, 1.0)[_raw(1, 1.0).index(b'"services"') :] for h in heads]
    for raw in raws:
        assert reuse.validate(raw) == HealthReport.model_validate_json(raw)
    calls: list[bytes] = []
    original = HealthReport.model_validate_json
    monkeypatch.setattr(
        HealthReport, "model_validate_json", lambda raw: calls.append(raw) or original(raw)
    )
    reuse.validate(_raw(5, 9.25))
    assert calls == []  # made from the previous report
    changed = _raw(6, 10.0, SERVICES[:1])
    assert reuse.validate(changed) == original(changed) and calls == [changed]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"sequence":3,"sent_at":-1,"services":[],"peers":[],"links":[]}',
        b'{"sequence":-3,"sent_at":1,"services":[],"peers":[],"links":[]}',
        b'{"sequence":3,"sent_at":1,"services":[],"peers":[],"links":[],"x":1}',
    ],
)
def test_an_invalid_repeat_is_refused_as_before(raw: bytes) -> None:
    reuse = ReportReuse()
    reuse.validate(b'{"sequence":1,"sent_at":1,"services":[],"peers":[],"links":[]}')
    with pytest.raises(ValidationError):
        HealthReport.model_validate_json(raw)
    with pytest.raises(ValidationError):
        reuse.validate(raw)


def test_a_huge_sent_at_is_validated_whole() -> None:
    reuse = ReportReuse()
    reuse.validate(b'{"sequence":1,"sent_at":1,"services":[],"peers":[],"links":[]}')
    raw = b'{"sequence":3,"sent_at":1e999,"services":[],"peers":[],"links":[]}'
    assert reuse.validate(raw) == HealthReport.model_validate_json(raw)


def test_numbers_a_later_key_overrides_are_not_reused() -> None:
    reuse = ReportReuse()
    raw = b'{"sequence":1,"sent_at":1,"services":[],"peers":[],"links":[],"sequence":9}'
    first = reuse.validate(raw)
    assert first == HealthReport.model_validate_json(raw)
    again = raw.replace(b'"sequence":1,', b'"sequence":2,', 1)
    assert reuse.validate(again) == HealthReport.model_validate_json(again)


def test_decode_message_with_reuse_returns_the_report_and_its_text() -> None:
    reuse = ReportReuse()
    for sequence in range(3):
        raw = _raw(sequence, 100.0 + sequence)
        line = b'{"type":"report","id":%d,"report":%s}' % (sequence, raw)
        assert decode_message(line, reuse) == (
            sequence,
            HealthReport.model_validate_json(raw),
            raw.decode(),
        )
