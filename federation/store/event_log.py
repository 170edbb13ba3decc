"""Every timeline event, also as one JSON line on the logger ``isthmus.events``.

The store is the single place events are appended (placement moves, failovers, lease changes,
joins, bundle rotations, NACKs, drills posted to ``POST /v1/events``), so it logs each one right
after it commits, at INFO, for log shippers that read lines rather than poll ``GET /v1/events``.
A line (no other text; fields in docs/observability.md)::

    {"time":"2026-11-25T21:02:31.412Z","id":42,"kind":"failover","subject":"catalog.shop",
     "detail":{"from":["gcp-euw1"],"to":["aws-use1"]}}

Logging never raises: a broken handler must not fail the write that was already committed.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

EVENTS_LOGGER = "isthmus.events"
_log = logging.getLogger(EVENTS_LOGGER)


def _iso(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_line(event_id: int, kind: str, subject: str, detail_text: str, at: float) -> str:
    """One JSON object (no newline). ``detail_text`` is the stored JSON object text."""
    return json.dumps(
        {
            "time": _iso(at),
            "id": event_id,
            "kind": kind,
            "subject": subject,
            "detail": json.loads(detail_text),
        },
        separators=(",", ":"),
    )


def log_event(event_id: int, kind: str, subject: str, detail_text: str, at: float) -> None:
    """Log one committed event on ``isthmus.events`` at INFO (if enabled); never raises."""
    try:
        if _log.isEnabledFor(logging.INFO):
            _log.info(event_line(event_id, kind, subject, detail_text, at))
    except Exception:  # the event is stored; a log failure must not undo that
        logging.getLogger(__name__).debug("could not log event %s", event_id, exc_info=True)
