"""``POST /v1/clusters/{cluster}/stream``: one full-duplex HTTP/2 stream per gateway.

A raw ASGI app (Starlette's ``Request.stream`` and ``StreamingResponse`` read ``receive`` to
detect disconnects, so they cannot send and receive at once; hypercorn's trio worker hands the
request body over chunk by chunk while the app sends). Per stream, in one nursery:

* the **writer** sends each new snapshot version of the cluster as it is published (routing
  only), preceded by the bundles when they differ from what this stream sent last, plus the
  answers to the gateway's messages;
* the **reader** takes NDJSON lines (reports, ACK/NACKs) and validates them with the same
  validation and errors as the REST endpoints (the stream belongs to one authenticated cluster:
  it can write only that cluster's data), never waiting for the store;
* the server's one :class:`~federation.service.stream_inbound.InboundSink` stores what the
  readers of all streams accepted, a pass at a time. A report renews the lease as of the
  moment it arrived; while one is being stored, a newer report of the stream replaces the one
  waiting (a report is the cluster's whole state: the store keeps only the latest anyway), so
  a slow store — a rebuild writing 1,000 snapshots — never makes a stream fall behind its
  gateway by more than one report, nor a lease lapse for a gateway that reports on time;
* the stream ends when the JWT-SVID that opened it expires (``end``: ``token-expired``), when
  the gateway closes its side, or at once when it disconnects.

Authentication happens once, at open, exactly as for REST calls.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

import trio

from federation.model.api import Ack, HealthReport
from federation.model.stream import STREAM_MEDIA_TYPE
from federation.service.auth import (
    CallerAuthenticator,
    bearer_token,
    require_own,
    unverified_claims,
)
from federation.service.core import FederationService
from federation.service.errors import BadRequestError, PayloadTooLargeError, ServiceError
from federation.service.hypercorn_compat import DIRECT_BODY, DirectBody
from federation.service.stream_inbound import InboundSink
from federation.service.stream_lines import ReportReuse, decode_message
from federation.service.stream_push import Push, PushEncoder
from federation.store import InvalidDocument, StaleBundleSequence, StoreError, StoreUnavailable

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
#: How long the end of a stream may take to reach a slow gateway before it is dropped.
_CLOSE_S = 5.0
#: Versions sent and not yet ACKed that are remembered (one may become the delta base).
_KEEP_UNACKED = 8


def _error_doc(err: ServiceError, message_id: int | None = None) -> dict[str, object]:
    fields = err.fields if isinstance(err, BadRequestError) else ()
    return {
        "type": "error",
        "id": message_id,
        "reason": err.reason,
        "message": str(err),
        "fields": [{"field": f, "message": m} for f, m in fields],
    }


def parse_after(text: str) -> int:
    """The ``after`` query parameter (a snapshot version) of a watch, long-poll or stream;
    ``BadRequestError`` naming it when it is not an integer."""
    try:
        return int(text)
    except ValueError as err:
        raise BadRequestError(
            f"after: {text!r} is not an integer version", fields=(("after", "not an integer"),)
        ) from err


def store_failure(err: StoreError) -> ServiceError:
    """The service error (and HTTP status) a store failure maps to."""
    if isinstance(err, StaleBundleSequence):
        return ServiceError(str(err), reason="stale-sequence", status=409)
    if isinstance(err, InvalidDocument):
        return ServiceError(str(err), reason="invalid-document", status=422)
    status = 503 if isinstance(err, StoreUnavailable) else 500
    return ServiceError(f"the federation's store failed: {err}", reason="store", status=status)


def _line(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


def _loose_id(line: bytes) -> int | None:
    """The ``id`` of a message that failed validation, if it has a usable one."""
    try:
        value = json.loads(line).get("id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class SnapshotStreamEndpoint:
    """The ASGI app of the stream route. Borrows the service and authenticator."""

    def __init__(
        self,
        service: FederationService,
        auth: CallerAuthenticator,
        *,
        max_message_bytes: int,
        sink: InboundSink | None = None,
    ) -> None:
        self.service = service
        self.auth = auth
        self.max_message_bytes = max_message_bytes
        self.encoder = PushEncoder()
        #: stores what every stream's reader accepted (its ``run`` must be running: streams
        #: are refused with 503 until it is)
        self.sink = sink if sink is not None else InboundSink(service)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        cluster = str(scope["path_params"]["cluster"])
        headers = {k.lower(): v for k, v in scope["headers"]}
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        try:
            session = await self._open(cluster, headers, query)
        except ServiceError as err:
            await self._refuse(send, err)
            return
        except StoreError as err:
            await self._refuse(send, store_failure(err))
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", STREAM_MEDIA_TYPE.encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        direct = scope.get("extensions", {}).get(DIRECT_BODY)
        session.direct = direct if isinstance(direct, DirectBody) else None
        await session.run(receive, send)

    async def _open(
        self, cluster: str, headers: dict[bytes, bytes], query: dict[str, list[str]]
    ) -> StreamSession:
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        caller = await self.auth.cluster_of(authorization)
        require_own(caller, cluster, "the snapshot stream")
        if not self.sink.running:
            raise ServiceError(
                "the federation is not storing stream messages (starting or stopping)",
                reason="unavailable",
                status=503,
            )
        expires_at = float(unverified_claims(bearer_token(authorization)).get("exp", 0))
        after = parse_after((query.get("after") or ["-1"])[0])
        digest = (query.get("bundles") or [""])[0]
        session = StreamSession(self, cluster, expires_at=expires_at, after=after, bundles=digest)
        session.deltas = (query.get("deltas") or ["0"])[0] == "1"
        return session

    async def _refuse(self, send: Send, err: ServiceError) -> None:
        self.service.metrics.reject(err.reason)
        doc = _error_doc(err)
        body = json.dumps({"error": {k: doc[k] for k in ("reason", "message", "fields")}})
        await send(
            {
                "type": "http.response.start",
                "status": err.status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body.encode(), "more_body": False})


class StreamSession:
    """One open stream (see the module docstring). :meth:`run` returns when it has ended."""

    def __init__(
        self,
        endpoint: SnapshotStreamEndpoint,
        cluster: str,
        *,
        expires_at: float,
        after: int,
        bundles: str,
    ) -> None:
        self.endpoint = endpoint
        self.service = endpoint.service
        self.cluster = cluster
        self.expires_at = expires_at
        self.sent_version = after
        self.sent_digest = bundles
        self.replies: list[bytes] = []
        self.wake = trio.Event()
        self.ending: bytes | None = None
        #: whether the gateway asked for ``delta`` messages (``?deltas=1``)
        self.deltas = False
        #: the last version the gateway ACKed (its delta base), versions sent since, and the
        #: versions sent as deltas (a NACK of one re-sends the current version in full)
        self.base: Push | None = None
        self.unacked: dict[int, Push] = {}
        self.sent_as_delta: set[int] = set()
        self.full_again = False
        #: what the reader accepted and the store has not taken yet
        self.inbound = endpoint.sink.stream(cluster, self._answered, self._store_failed)
        #: the server's offer of body chunks in its read task (see ``_take_chunk``), if any
        self.direct: DirectBody | None = None
        self._buffer = bytearray()
        self._reports = ReportReuse()

    async def run(self, receive: Receive, send: Send) -> None:
        """Serve until the gateway leaves, closes its side, or its token expires."""
        gone = False
        self.wake.set()  # a version newer than ``after`` may be served already
        with self.service.publisher.watching(self.cluster, self._poke):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write, send)
                nursery.start_soon(self._expire, nursery.cancel_scope)
                gone = await self._read(receive)
                self.inbound.close()  # store what was read (bounded), then end
                with trio.move_on_after(_CLOSE_S):
                    await self.inbound.wait_stored()
                nursery.cancel_scope.cancel()
        if gone:
            return
        with trio.move_on_after(_CLOSE_S):
            final = b"".join(self.replies) + (self.ending or b"")
            await send({"type": "http.response.body", "body": final, "more_body": False})

    def _reply(self, doc: object) -> None:
        self.replies.append(_line(doc))
        self.wake.set()

    async def _expire(self, scope: trio.CancelScope) -> None:
        clock = self.service.clock
        await trio.sleep(max(0.0, self.expires_at - clock()))
        self.ending = _line(
            {
                "type": "end",
                "reason": "token-expired",
                "message": "the JWT-SVID that opened this stream expired: open a new one",
            }
        )
        scope.cancel()

    def _poke(self) -> None:
        """The publisher serves a new version of the cluster: the writer sends it."""
        self.wake.set()

    async def _write(self, send: Send) -> None:
        publisher, encoder = self.service.publisher, self.endpoint.encoder
        while True:
            await self.wake.wait()
            self.wake = trio.Event()
            served = publisher.current(self.cluster)
            data = b""
            if served is not None and (served.version != self.sent_version or self.full_again):
                push = encoder.push_served(self.cluster, served)
                if push.bundles.digest != self.sent_digest:
                    data = encoder.bundles_line(self.sent_digest, push.bundles)
                    self.sent_digest = push.bundles.digest
                data += self._routing_line(push)
                self.sent_version = push.version
                self.service.metrics.pushed(self.cluster, push.version, self.service.clock())
            if self.replies:
                data, self.replies = data + b"".join(self.replies), []
            if data:
                await send({"type": "http.response.body", "body": data, "more_body": True})

    def _routing_line(self, push: Push) -> bytes:
        """``push`` as a delta against the ACKed base when the gateway takes deltas and one is
        smaller; else in full."""
        full_again, self.full_again = self.full_again, False
        self.unacked[push.version] = push
        for version in sorted(self.unacked)[:-_KEEP_UNACKED]:
            del self.unacked[version]
        base = self.base
        if not self.deltas or full_again or base is None or base.version >= push.version:
            self.sent_as_delta.discard(push.version)
            return push.snapshot_line
        line = self.endpoint.encoder.delta(self.cluster, base, push)
        if line is None:
            self.sent_as_delta.discard(push.version)
            return push.snapshot_line
        self.sent_as_delta.add(push.version)
        return line

    def _acked(self, ack: Ack) -> None:
        """Track the gateway's delta base: an ACKed version becomes it; a NACKed delta is
        followed by the current version in full (the gateway may lack the base)."""
        if ack.ok:
            push = self.unacked.get(ack.version)
            if push is not None and (self.base is None or self.base.version < push.version):
                self.base = push
            for version in [v for v in self.unacked if v <= ack.version]:
                del self.unacked[version]
            self.sent_as_delta = {v for v in self.sent_as_delta if v > ack.version}
        elif ack.version in self.sent_as_delta:
            self.sent_as_delta.discard(ack.version)
            self.base = None
            self.full_again = True
            self.wake.set()

    async def _read(self, receive: Receive) -> bool:
        """Handle every line until the gateway closes its side (False) or leaves (True)."""
        direct = self.direct
        if direct is not None:
            direct.consume = self._take_chunk
        try:
            return await self._read_queued(receive, direct)
        finally:
            if direct is not None:
                direct.consume = None

    async def _read_queued(self, receive: Receive, direct: DirectBody | None) -> bool:
        """The lines of the chunks ``receive`` hands over (all of them, or those
        :meth:`_take_chunk` declined)."""
        limit = self.endpoint.max_message_bytes
        buffer = self._buffer
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return True
            buffer += message.get("body", b"")
            while (end := buffer.find(b"\n")) >= 0:
                line = bytes(buffer[:end])
                del buffer[: end + 1]
                ack = self._handle_now(line, limit)
                if ack is not None:
                    await self.inbound.put_ack(*ack)
            if len(buffer) > limit:
                self._refused(PayloadTooLargeError(
                    f"stream message is over the {limit}-byte limit; closing the stream",
                    reason="too-large"))  # fmt: skip
                return False
            if not message.get("more_body", False):
                ack = self._handle_now(bytes(buffer), limit)
                if ack is not None:
                    await self.inbound.put_ack(*ack)
                return False
            if direct is not None:
                direct.received()

    def _take_chunk(self, chunk: bytes) -> bool:
        """Handle ``chunk``'s lines now, in the connection's read task (a task switch less per
        message than through ``receive``), unless that could need waiting or ending the
        stream: an unfinished line past the limit, or more lines than ACKs may queue (then
        False: the chunk goes through ``receive`` and :meth:`_read_queued`, in order)."""
        limit = self.endpoint.max_message_bytes
        buffer = self._buffer
        last = chunk.rfind(b"\n")
        if (len(chunk) - last - 1 if last >= 0 else len(buffer) + len(chunk)) > limit:
            return False
        if not self.inbound.has_room(chunk.count(b"\n")):
            return False
        buffer += chunk
        while (end := buffer.find(b"\n")) >= 0:
            line = bytes(buffer[:end])
            del buffer[: end + 1]
            ack = self._handle_now(line, limit)
            if ack is not None:
                self.inbound.put_ack_now(*ack)
        return True

    def _refused(self, err: ServiceError, message_id: int | None = None) -> None:
        self.service.metrics.reject(err.reason)
        self._reply(_error_doc(err, message_id))

    def _answered(self, ids: list[int]) -> None:
        self.replies.extend(b'{"type":"ok","id":%d}\n' % message_id for message_id in ids)
        self.wake.set()

    def _store_failed(self, err: ServiceError | StoreError, ids: list[int]) -> None:
        error = err if isinstance(err, ServiceError) else store_failure(err)
        targets: list[int | None] = [*ids] if ids else [None]
        for message_id in targets:
            self._refused(error, message_id)

    def _handle_now(self, line: bytes, limit: int) -> tuple[int | None, Ack] | None:
        """Validate one up message: queue a report for the store (answered once stored),
        answer a refusal at once; an ACK is returned for the caller to queue (``put_ack``)."""
        if not line.strip():
            return None
        if len(line) > limit:
            too_large = f"stream message of {len(line)} bytes is over the {limit}-byte limit"
            self._refused(PayloadTooLargeError(too_large, reason="too-large"), _loose_id(line))
            return None
        try:
            message_id, content, raw = decode_message(line, self._reports)
        except BadRequestError as err:
            self._refused(err, _loose_id(line))
            return None
        if isinstance(content, HealthReport):
            self.inbound.put_report(message_id, content, raw, self.service.clock())
            return None
        self._acked(content)
        return message_id, content
