"""``POST /v1/events``: external timeline events (drills, deploys) posted by operators.

The body is a small, validated :class:`ExternalEvent`; kinds the federation writes itself
(``lease``, ``cluster-joined``, ...) are refused so a timeline entry of those kinds always
comes from the federation. The stored detail carries ``"external": true``.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from federation.model.base import FrozenModel

#: Largest accepted body, in bytes (checked before parsing).
MAX_EVENT_BYTES = 16 * 1024
MAX_DETAIL_ITEMS = 32
MAX_DETAIL_VALUE_CHARS = 1024

#: Kinds only the federation itself records.
RESERVED_KINDS = frozenset({"lease", "cluster-joined", "bundle-updated", "snapshot-nacked"})

DetailValue = str | int | float | bool | None


class ExternalEvent(FrozenModel):
    """An event for the timeline, e.g. ``{"kind": "drill", "subject": "aws-use1",
    "detail": {"action": "kill-cluster"}}``."""

    kind: str = Field(pattern=r"^[a-z][a-z0-9-]{0,47}$", description="e.g. drill, deploy")
    subject: str = Field(default="", max_length=255, description="cluster, service, ...")
    detail: dict[str, DetailValue] = Field(default_factory=dict)

    @field_validator("kind")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_KINDS:
            raise ValueError(f"{value!r} is recorded by the federation itself; use another kind")
        return value

    @field_validator("detail")
    @classmethod
    def _small(cls, value: dict[str, DetailValue]) -> dict[str, DetailValue]:
        if len(value) > MAX_DETAIL_ITEMS:
            raise ValueError(f"at most {MAX_DETAIL_ITEMS} detail items, got {len(value)}")
        for key, item in value.items():
            if not key or len(key) > 64:
                raise ValueError(f"detail key {key[:70]!r} must be 1..64 characters")
            if isinstance(item, str) and len(item) > MAX_DETAIL_VALUE_CHARS:
                raise ValueError(f"detail {key!r} is over {MAX_DETAIL_VALUE_CHARS} characters")
        return value
