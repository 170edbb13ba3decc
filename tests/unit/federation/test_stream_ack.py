"""ACK lines of the form gateways send are read without pydantic, to the same ACK."""

from __future__ import annotations

import pytest

from federation.model.api import Ack
from federation.model.stream import StreamAck
from federation.service.stream_lines import decode_message, fast_ack, parse_message


@pytest.mark.parametrize("message_id", [None, 0, 7, 2**53])
@pytest.mark.parametrize("error", [None, ""])
def test_a_plain_ack_reads_as_the_validated_one(message_id: int | None, error: str | None) -> None:
    ack = {"version": 12, "ok": True} if error is None else Ack(version=12, ok=True, error="")
    message = StreamAck.model_validate({"type": "ack", "id": message_id, "ack": ack})
    line = message.model_dump_json(exclude_none=True).encode()
    if error is None:
        line = line.replace(b',"error":""', b"")
    fast = fast_ack(line + b"\n")
    assert fast is not None
    assert fast == (message.id, message.ack)
    assert decode_message(line) == (message.id, parse_message(line).ack, "")


@pytest.mark.parametrize(
    "line",
    [
        b'{"type":"ack","ack":{"version":1,"ok":false,"error":"bad"}}',
        b'{"type":"ack","ack":{"version":1,"ok":true,"error":"x"}}',
        b'{"type":"ack","id":9007199254740993,"ack":{"version":1,"ok":true}}',
        b'{"type":"ack","ack":{"version":-1,"ok":true}}',
        b'{"type":"ack","ack":{"version":1,"ok":true}} {"x":1}',
        b'{"type":"ack", "ack":{"version":1,"ok":true}}',
    ],
)
def test_any_other_ack_line_is_parsed_whole(line: bytes) -> None:
    assert fast_ack(line) is None
