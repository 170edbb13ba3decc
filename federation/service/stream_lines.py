"""Decoding the up messages of a snapshot stream: one NDJSON line each, a report or an ACK.

The forms gateways send are read without pydantic's union dispatch (a report's part is
validated on its own, a plain ACK is matched whole); any other line is parsed and validated
whole and refused with every bad field named. A stream's :class:`ReportReuse` also skips
validating a report that repeats the stream's previous one but for its ``sequence`` and
``sent_at`` (the steady state: the same services, a new number and time, every second).
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import ValidationError

from federation.model.api import Ack, HealthReport
from federation.model.stream import MAX_MESSAGE_ID, UPSTREAM, StreamReport
from federation.service.errors import BadRequestError

_MESSAGE_TYPES = frozenset({"report", "ack"})
#: A report line whose only other keys come first: what follows is the report, then ``}``.
_REPORT_HEAD = re.compile(rb'\{"type":"report"(?:,"id":([0-9]{1,16}))?,"report":')
#: An ACK line as gateways send it (``ok``, no error): read without pydantic.
_PLAIN_ACK = re.compile(
    rb'\{"type":"ack"(?:,"id":([0-9]{1,16}))?,"ack":\{"version":([0-9]{1,16}),"ok":true'
    rb'(?:,"error":"")?\}\}'
)


#: The head of a report as ``HealthReport.model_dump_json`` writes it: a JSON integer
#: ``sequence`` (≤ 18 digits) and a non-negative JSON number ``sent_at``, then the rest.
_REPORT_NUMBERS = re.compile(
    rb'\{"sequence":(0|[1-9][0-9]{0,17}),"sent_at":((?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?),'
)


class ReportReuse:
    """One stream's last validated report, to make the next one from when only its
    ``sequence`` and ``sent_at`` differ (same bytes after them): the same model
    ``model_validate_json`` returns, without parsing the services again."""

    __slots__ = ("_report", "_rest")

    def __init__(self) -> None:
        self._rest = b""
        self._report: HealthReport | None = None

    def validate(self, raw: bytes) -> HealthReport:
        """``HealthReport.model_validate_json(raw)`` (raises its ``ValidationError``)."""
        head = _REPORT_NUMBERS.match(raw)
        if head is not None:
            sequence, sent_at = int(head.group(1)), float(head.group(2))
            last = self._report
            if last is not None and math.isfinite(sent_at) and raw[head.end() :] == self._rest:
                return last.model_copy(update={"sequence": sequence, "sent_at": sent_at})
        report = HealthReport.model_validate_json(raw)
        if head is not None and (report.sequence, report.sent_at) == (sequence, sent_at):
            self._rest, self._report = raw[head.end() :], report
        else:  # another form, or a later key overrode the head's numbers: not reusable
            self._rest, self._report = b"", None
        return report


def fast_report(
    line: bytes, reuse: ReportReuse | None = None
) -> tuple[int | None, HealthReport, str] | None:
    """``(id, report, its JSON as sent)`` for a report line of the form gateways send
    (``{"type":"report"[,"id":N],"report":{...}}``, the report last), validated without
    re-encoding it; ``None`` for any other line, or one whose report part is not valid on its
    own (then the whole line is parsed, and refused with the usual error if it must be)."""
    line = line.strip()
    match = _REPORT_HEAD.match(line)
    if match is None or not line.endswith(b"}"):
        return None
    raw = line[match.end() : -1]
    message_id = None if match.group(1) is None else int(match.group(1))
    if message_id is not None and message_id > MAX_MESSAGE_ID:
        return None
    try:
        report = HealthReport.model_validate_json(raw) if reuse is None else reuse.validate(raw)
    except ValidationError:
        return None
    return message_id, report, raw.decode()


def fast_ack(line: bytes) -> tuple[int | None, Ack] | None:
    """``(id, ACK)`` of a line of exactly the form gateways send for an ACK
    (``{"type":"ack"[,"id":N],"ack":{"version":V,"ok":true[,"error":""]}}``); ``None`` for any
    other line (then it is parsed and validated whole)."""
    match = _PLAIN_ACK.fullmatch(line.strip())
    if match is None:
        return None
    message_id = None if match.group(1) is None else int(match.group(1))
    if message_id is not None and message_id > MAX_MESSAGE_ID:
        return None
    return message_id, Ack.model_construct(version=int(match.group(2)), ok=True, error="")


def _untagged(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """A field path without the union's tag pydantic puts first (``report.report.x``)."""
    return loc[1:] if loc and loc[0] in _MESSAGE_TYPES else loc


def parse_message(line: bytes) -> Any:
    """An up message, or :class:`BadRequestError` naming every bad field."""
    try:
        return UPSTREAM.validate_json(line)
    except ValidationError as err:
        fields = tuple(
            (".".join(str(p) for p in _untagged(item["loc"])) or "(message)", item["msg"])
            for item in err.errors()
        )
        problems = "; ".join(f"{f}: {m}" for f, m in fields)
        raise BadRequestError(f"invalid stream message: {problems}", fields=fields) from err


def decode_message(
    line: bytes, reuse: ReportReuse | None = None
) -> tuple[int | None, HealthReport | Ack, str]:
    """``(id, report or ACK, the report's JSON text or "")`` of an up message, or
    :class:`BadRequestError` naming every bad field; ``reuse``: the stream's last report."""
    fast = fast_report(line, reuse)
    if fast is not None:
        return fast
    ack = fast_ack(line)
    if ack is not None:
        return ack[0], ack[1], ""
    message = parse_message(line)
    if isinstance(message, StreamReport):
        return message.id, message.report, message.report.model_dump_json()
    return message.id, message.ack, ""
