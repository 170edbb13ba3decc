"""Join tokens: single-use, expiring, and any edit to the token is caught."""

from __future__ import annotations

import base64
import json

import pytest

from federation.service import (
    JoinToken,
    JoinTokenError,
    check_join_token,
    create_join_token,
)

FP = "sha256:" + "ab" * 32


def make(now: float = 1000.0, ttl: float = 3600.0) -> tuple[JoinToken, object]:
    return create_join_token(
        federation_url="https://127.0.0.1:8443/",
        ca_sha256=FP,
        cluster="aws-use1",
        now=now,
        ttl_s=ttl,
    )


def edit(text: str, **changes: str) -> str:
    body = text.removeprefix("isthmus-join-v1.")
    doc = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    doc.update(changes)
    raw = json.dumps(doc).encode()
    return "isthmus-join-v1." + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_token_round_trips_and_is_accepted_before_expiry() -> None:
    token, record = make()
    text = token.encode()
    assert text.startswith("isthmus-join-v1.")
    decoded = JoinToken.decode(text)
    assert decoded == token
    assert decoded.federation_url == "https://127.0.0.1:8443"
    check_join_token(decoded, record, now=1000.0 + 3599)  # type: ignore[arg-type]


def test_record_keeps_no_secret() -> None:
    token, record = make()
    assert token.secret not in repr(record)
    assert token.secret not in repr(token)


def test_expired_token_is_refused_with_reason() -> None:
    token, record = make(ttl=60)
    with pytest.raises(JoinTokenError, match="has expired") as info:
        check_join_token(token, record, now=1061.0)  # type: ignore[arg-type]
    assert info.value.reason == "expired"


def test_reused_token_is_refused() -> None:
    token, record = make()
    with pytest.raises(JoinTokenError, match="already used") as info:
        check_join_token(token, record, now=1000.0, already_used=True)  # type: ignore[arg-type]
    assert info.value.reason == "reused"


def test_unknown_token_is_refused() -> None:
    token, _ = make()
    with pytest.raises(JoinTokenError, match="unknown") as info:
        check_join_token(token, None, now=1000.0)
    assert info.value.reason == "unknown"


@pytest.mark.parametrize(
    "field,value",
    [
        ("url", "https://evil.example:8443"),
        ("ca_sha256", "sha256:" + "cd" * 32),
        ("cluster", "gcp-euw1"),
        ("secret", "guess"),
    ],
)
def test_any_edit_to_a_token_is_tampering(field: str, value: str) -> None:
    token, record = make()
    forged = JoinToken.decode(edit(token.encode(), **{field: value}))
    with pytest.raises(JoinTokenError, match="altered") as info:
        check_join_token(forged, record, now=1000.0)  # type: ignore[arg-type]
    assert info.value.reason == "tampered"


@pytest.mark.parametrize(
    "text,message",
    [
        ("hello", "must start with"),
        ("isthmus-join-v1.!!!", "damaged"),
        ("isthmus-join-v1." + base64.urlsafe_b64encode(b'{"url": "x"}').decode(), "exactly"),
    ],
)
def test_malformed_tokens_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(JoinTokenError, match=message):
        JoinToken.decode(text)


def test_bad_cluster_name_is_refused_at_creation() -> None:
    with pytest.raises(JoinTokenError, match="cluster"):
        create_join_token(federation_url="https://x", ca_sha256=FP, cluster="Bad_Name", now=0.0)
