"""Every committed timeline event is also one JSON line on ``isthmus.events`` (both backends)."""

from __future__ import annotations

import io
import json
import logging

import pytest

from federation.store import Store
from federation.store.event_log import EVENTS_LOGGER


async def test_each_event_is_logged_once_as_a_json_line(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=EVENTS_LOGGER)
    first = await store.append_event(
        "failover", "catalog.shop", {"from": ["gcp"], "to": ["aws"]}, 1795640584.25
    )
    second = await store.append_event("lease", "gcp", '{"from":"healthy","to":"unreachable"}', 2.0)
    lines = [r for r in caplog.records if r.name == EVENTS_LOGGER]
    assert [r.levelno for r in lines] == [logging.INFO, logging.INFO]
    events = [json.loads(r.getMessage()) for r in lines]
    assert events[0] == {
        "time": "2026-11-25T21:03:04.250Z",
        "id": first,
        "kind": "failover",
        "subject": "catalog.shop",
        "detail": {"from": ["gcp"], "to": ["aws"]},
    }
    assert events[1]["id"] == second and events[1]["kind"] == "lease"
    assert events[1]["detail"] == {"from": "healthy", "to": "unreachable"}
    stored = await store.list_events()
    assert [(e.id, e.kind, e.subject) for e in stored] == [
        (ev["id"], ev["kind"], ev["subject"]) for ev in events
    ]


async def test_a_refused_event_is_not_logged(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=EVENTS_LOGGER)
    with pytest.raises(Exception, match="detail"):
        await store.append_event("drill", "gcp", "[1, 2]", 1.0)
    assert not [r for r in caplog.records if r.name == EVENTS_LOGGER]
    assert await store.list_events() == []


async def test_federation_serve_writes_event_lines_to_its_stream(store: Store) -> None:
    from isthmus.commands.federation_cmds import configure_event_log

    out = io.StringIO()
    events = logging.getLogger(EVENTS_LOGGER)
    saved = (events.handlers[:], events.level, events.propagate)
    events.handlers.clear()
    try:
        configure_event_log(out)
        configure_event_log(out)  # idempotent: one handler, one line per event
        event_id = await store.append_event("cluster-joined", "aws", {"trust_domain": "a"}, 5.0)
    finally:
        events.handlers[:], events.level, events.propagate = saved
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["id"] == event_id
    assert json.loads(lines[0])["detail"] == {"trust_domain": "a"}
