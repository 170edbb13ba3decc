"""The gateway's end of the snapshot stream (``POST /v1/clusters/{cluster}/stream``).

:class:`SnapshotStream` wraps one open :class:`~federation.client.h2duplex.DuplexStream`:
reports and ACK/NACKs go up as NDJSON lines; :meth:`SnapshotStream.next_snapshot` returns each
snapshot the federation pushes, rebuilt as the same :class:`~federation.model.api.Snapshot` the
long-poll serves (the pushed routing plus the latest bundles message on the stream), so the
gateway's checks — bundle signatures and sequences included — are those of the REST path.
:class:`BundleState` (the last bundles received) outlives a stream: a reconnect names its digest
and the federation does not send an unchanged bundle set again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from pydantic import ValidationError

from federation.client.errors import (
    FederationClientError,
    FederationUnavailable,
    SnapshotRejected,
)
from federation.client.h2duplex import DuplexBroken, DuplexError, DuplexStream, StreamClosed
from federation.model.api import Ack, HealthReport, Snapshot
from federation.model.base import describe_validation_error
from federation.model.routing import RoutingModel
from federation.model.routing_delta import apply_delta
from federation.model.stream import (
    DOWNSTREAM,
    Downstream,
    StreamAck,
    StreamBundles,
    StreamBundlesDelta,
    StreamDelta,
    StreamError,
    StreamReply,
    StreamReport,
    StreamSnapshot,
)

_log = logging.getLogger(__name__)
#: Routings kept as delta bases: the ones ACKed last, and the ones delivered not yet answered.
_KEEP_BASES = 4


class StreamEnded(FederationClientError):
    """The federation ended the stream (``reason``, e.g. ``token-expired``): reopen it."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(f"federation ended the stream ({reason}): {message}")


@dataclass
class BundleState:
    """The bundles (and signed updates) of the latest ``bundles`` message, and its digest."""

    digest: str = ""
    bundles: dict[str, str] = field(default_factory=dict)
    bundle_updates: dict[str, str] = field(default_factory=dict)

    def replace(self, message: StreamBundles) -> None:
        """Take a full ``bundles`` message."""
        self.digest = message.digest
        self.bundles = dict(message.bundles)
        self.bundle_updates = dict(message.bundle_updates)

    def apply(self, message: StreamBundlesDelta) -> bool:
        """Apply a ``bundles_delta`` if it is against the set held (``message.base``); else
        forget the set (the next stream then gets it in full) and return ``False``. Nothing is
        trusted here: the gateway checks every bundle of the resulting set, as for a full one."""
        if not self.digest or message.base != self.digest:
            self.digest, self.bundles, self.bundle_updates = "", {}, {}
            return False
        self.bundles = _applied(self.bundles, message.bundles)
        self.bundle_updates = _applied(self.bundle_updates, message.bundle_updates)
        self.digest = message.digest
        return True


def _applied(held: dict[str, str], changes: dict[str, str | None]) -> dict[str, str]:
    out = dict(held)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def _loose_snapshot_version(line: bytes) -> int | None:
    """The version of a ``snapshot`` line that failed validation, if it has a usable one."""
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("type") != "snapshot":
        return None
    version = doc.get("version")
    return version if isinstance(version, int) and version >= 0 else None


class SnapshotStream:
    """One open stream. Sends from several tasks are fine (each line is written whole);
    one task reads (:meth:`next_snapshot`)."""

    def __init__(self, duplex: DuplexStream, bundles: BundleState) -> None:
        self.duplex = duplex
        self.bundles = bundles
        #: the federation's last refusal of one of our messages (reason: message)
        self.last_refusal = ""
        self.replies = 0
        self._delivered: dict[int, RoutingModel] = {}
        self._bases: dict[int, RoutingModel] = {}

    async def _send(self, line: bytes) -> None:
        try:
            await self.duplex.send(line)
        except DuplexError as err:
            raise FederationUnavailable(f"snapshot stream broken: {err}") from err

    async def send_report(self, report: HealthReport, message_id: int | None = None) -> None:
        """Send a health report (renews the lease); ``message_id`` asks for an ``ok``."""
        message = StreamReport(type="report", id=message_id, report=report)
        await self._send(message.model_dump_json(exclude_none=True).encode() + b"\n")

    async def send_ack(
        self, version: int, ok: bool, error: str = "", message_id: int | None = None
    ) -> None:
        """ACK (``ok``) or NACK (with ``error``) a snapshot version."""
        if ok and version in self._delivered:
            self._bases[version] = self._delivered.pop(version)
            _trim(self._bases)
        ack = Ack(version=version, ok=ok, error=error[:4000])
        message = StreamAck(type="ack", id=message_id, ack=ack)
        await self._send(message.model_dump_json(exclude_none=True).encode() + b"\n")

    async def aclose(self) -> None:
        await self.duplex.aclose()

    async def _line(self) -> bytes:
        try:
            return await self.duplex.receive_line()
        except StreamClosed as err:
            raise StreamEnded("closed", str(err)) from err
        except DuplexBroken as err:
            raise FederationUnavailable(f"snapshot stream broken: {err}") from err

    async def next_snapshot(self) -> Snapshot:
        """The next snapshot pushed. Raises :class:`SnapshotRejected` (with the version when
        readable: NACK it and read on), :class:`StreamEnded` or :class:`FederationUnavailable`."""
        while True:
            line = await self._line()
            try:
                message = DOWNSTREAM.validate_json(line)
            except ValidationError as err:
                problems = "; ".join(describe_validation_error(err)[:5])
                version = _loose_snapshot_version(line)
                if version is None:
                    raise FederationUnavailable(f"unreadable stream message: {problems}") from err
                raise SnapshotRejected(
                    f"snapshot is not valid: {problems}", version=version
                ) from err
            snapshot = self._take(message)
            if snapshot is not None:
                return snapshot

    def _routing_of(self, message: StreamDelta) -> RoutingModel:
        base = self._bases.get(message.base)
        if base is None:
            raise SnapshotRejected(
                f"delta v{message.version} is against v{message.base}, which this gateway "
                "does not hold: send the full snapshot",
                version=message.version,
                refetch=True,
            )
        try:
            return apply_delta(base, message.routing)
        except ValidationError as err:
            problems = "; ".join(describe_validation_error(err)[:5])
            raise SnapshotRejected(
                f"snapshot is not valid: {problems}", version=message.version
            ) from err
        except ValueError as err:
            raise SnapshotRejected(
                f"snapshot delta is not valid: {err}", version=message.version
            ) from err

    def _take(self, message: Downstream) -> Snapshot | None:
        if isinstance(message, StreamSnapshot | StreamDelta):
            routing = (
                message.routing
                if isinstance(message, StreamSnapshot)
                else self._routing_of(message)
            )
            self._delivered[message.version] = routing
            _trim(self._delivered)
            state = self.bundles
            return Snapshot(
                version=message.version,
                routing=routing,
                bundles=state.bundles,
                bundle_updates=state.bundle_updates,
            )
        if isinstance(message, StreamBundles):
            self.bundles.replace(message)
        elif isinstance(message, StreamBundlesDelta):
            if not self.bundles.apply(message):
                raise FederationUnavailable(
                    f"bundle delta {message.digest} is against set {message.base!r}, which "
                    "this gateway does not hold: reopening the stream for the full set"
                )
        elif isinstance(message, StreamReply):
            self.replies += 1
        elif isinstance(message, StreamError):
            self.last_refusal = f"{message.reason}: {message.message}"
            _log.warning("the federation refused a stream message: %s", self.last_refusal)
        else:
            raise StreamEnded(message.reason, message.message)
        return None


def _trim(routings: dict[int, RoutingModel]) -> None:
    for version in sorted(routings)[:-_KEEP_BASES]:
        del routings[version]
