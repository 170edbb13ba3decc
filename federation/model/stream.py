"""Messages of the snapshot stream ``POST /v1/clusters/{cluster}/stream`` (NDJSON both ways).

One long-lived, full-duplex HTTP/2 stream per gateway, as xDS ADS does: the federation pushes
trust bundles (on open and whenever they change) and routing (each new snapshot version) down;
the gateway sends its health reports and its ACK/NACK of each version up. Every line is one
JSON object with a ``type``.

Up (gateway -> federation): :class:`StreamReport`, :class:`StreamAck`. An optional ``id`` asks
for a :class:`StreamReply` once the message is stored; a refused message is answered by a
:class:`StreamError` (with the ``id`` when one was given) and stores nothing.

Down (federation -> gateway): :class:`StreamBundles` (every trust bundle and signed update, a
separately versioned resource identified by ``digest``), :class:`StreamBundlesDelta` (the same,
told as the trust domains changed since the set this stream sent last), :class:`StreamSnapshot`
(the routing of snapshot ``version``; the snapshot is that routing with the latest bundles
received on the same stream), :class:`StreamDelta` (the same, told against a version the
gateway ACKed), :class:`StreamReply`, :class:`StreamError` and :class:`StreamEnd` (the server
ends the stream, e.g. when the JWT-SVID that opened it expires; reconnect with a fresh one).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter

from federation.model.api import Ack, HealthReport
from federation.model.base import FrozenModel
from federation.model.routing import RoutingModel

#: Largest message id (JSON-safe integer).
MAX_MESSAGE_ID = 2**53
STREAM_MEDIA_TYPE = "application/x-ndjson"


class StreamReport(FrozenModel):
    """A health report, exactly as ``POST /v1/clusters/{cluster}/reports`` takes it."""

    type: Literal["report"]
    id: int | None = Field(default=None, ge=0, le=MAX_MESSAGE_ID)
    report: HealthReport


class StreamAck(FrozenModel):
    """An ACK or NACK, exactly as ``POST /v1/clusters/{cluster}/acks`` takes it."""

    type: Literal["ack"]
    id: int | None = Field(default=None, ge=0, le=MAX_MESSAGE_ID)
    ack: Ack


UpstreamMessage = Annotated[StreamReport | StreamAck, Field(discriminator="type")]
UPSTREAM = TypeAdapter[StreamReport | StreamAck](UpstreamMessage)


class StreamBundles(FrozenModel):
    """Every relayed trust bundle and signed update; sent on open and when they change.
    ``digest`` names this set: a reconnecting gateway passes it as ``?bundles=`` and the
    federation does not re-send an unchanged set."""

    type: Literal["bundles"]
    digest: str
    bundles: dict[str, str] = Field(default_factory=dict)
    bundle_updates: dict[str, str] = Field(default_factory=dict)


class StreamBundlesDelta(FrozenModel):
    """The bundle set ``digest`` told as what changed against set ``base``, the one this stream
    last sent (or the gateway named on open): each trust domain added or changed with its new
    value, each removed one as ``null``. A gateway applies it only when it holds ``base``;
    otherwise it drops its bundle set and reopens the stream, which then sends the set in full.
    The gateway checks the resulting set exactly as a :class:`StreamBundles` one."""

    type: Literal["bundles_delta"]
    digest: str
    base: str
    bundles: dict[str, str | None] = Field(default_factory=dict)
    bundle_updates: dict[str, str | None] = Field(default_factory=dict)


class StreamSnapshot(FrozenModel):
    """The routing of snapshot ``version`` (its bundles: the latest :class:`StreamBundles`)."""

    type: Literal["snapshot"]
    version: int = Field(ge=0)
    routing: RoutingModel


class StreamDelta(FrozenModel):
    """The routing of snapshot ``version`` as what changed against version ``base``, the last
    one this gateway ACKed on this stream (only to gateways that opened it with ``?deltas=1``;
    see :mod:`federation.model.routing_delta`). A gateway that does not hold ``base`` NACKs
    ``version``; the federation then sends the current version in full."""

    type: Literal["delta"]
    version: int = Field(ge=0)
    base: int = Field(ge=0)
    routing: dict[str, Any]


class StreamReply(FrozenModel):
    """The up message with this ``id`` was stored."""

    type: Literal["ok"]
    id: int


class StreamErrorField(FrozenModel):
    field: str
    message: str


class StreamError(FrozenModel):
    """An up message was refused (nothing stored): the same reasons as the REST API's errors."""

    type: Literal["error"]
    id: int | None = None
    reason: str
    message: str
    fields: tuple[StreamErrorField, ...] = ()


class StreamEnd(FrozenModel):
    """The federation ends the stream (``reason``: ``token-expired``, ``shutdown``, ...)."""

    type: Literal["end"]
    reason: str
    message: str = ""


Downstream = (
    StreamBundles
    | StreamBundlesDelta
    | StreamSnapshot
    | StreamDelta
    | StreamReply
    | StreamError
    | StreamEnd
)
DownstreamMessage = Annotated[Downstream, Field(discriminator="type")]
DOWNSTREAM = TypeAdapter[Downstream](DownstreamMessage)
