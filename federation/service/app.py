"""The federation HTTP API as a Starlette app (runs on trio through anyio, served by hypercorn).

Every request body is read with a size cap (413 before any parsing), validated by the frozen
wire models (422 naming each bad field) and only then handed to
:class:`~federation.service.core.FederationService`. Errors are JSON
``{"error": {"reason", "message", "fields"}}``. The app borrows the service; whoever built the
service owns the store and the publisher task.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from federation.model.api import Ack, BundleUpdateRequest, HealthReport, JoinRequest
from federation.model.base import describe_validation_error
from federation.service.auth import CallerAuthenticator, require_own
from federation.service.core import FederationService
from federation.service.errors import (
    BadRequestError,
    PayloadTooLargeError,
    ServiceError,
)
from federation.service.openapi import openapi_document
from federation.service.placement_api import PlacementHandlers, placement_routes
from federation.service.snapshot_bytes import accepts_gzip
from federation.service.stream import SnapshotStreamEndpoint, parse_after, store_failure
from federation.service.stream_inbound import InboundSink
from federation.store import StoreError
from federation.ui import ui_routes

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
#: How much of a refused body we read and discard so HTTP/2 clients see the answer.
DRAIN_CAP_BYTES = 16 * 1024 * 1024
M = TypeVar("M", bound=BaseModel)
Handler = Callable[[Request], Awaitable[Response]]
_log = logging.getLogger(__name__)


def error_response(status: int, reason: str, message: str, fields: object = ()) -> JSONResponse:
    fields_doc = [{"field": f, "message": m} for f, m in fields]  # type: ignore[attr-defined]
    body = {"error": {"reason": reason, "message": message, "fields": fields_doc}}
    return JSONResponse(body, status_code=status)


async def drain_body(request: Request, cap: int = DRAIN_CAP_BYTES, timeout_s: float = 5.0) -> None:
    """Read and discard what is left of the body before answering an error.

    An HTTP/2 client blocked on flow control never reads our early answer, so we consume up to
    ``cap`` bytes (bounded in time) instead of leaving it stuck; nothing read here is kept.
    """
    with trio.move_on_after(timeout_s):
        seen = 0
        try:
            async for chunk in request.stream():
                seen += len(chunk)
                if seen > cap:
                    return
        except (RuntimeError, ClientDisconnect):  # already consumed, or the client left
            return


def _guarded(metrics_reject: Callable[[str], None], handler: Handler) -> Handler:
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except ServiceError as err:
            await drain_body(request)
            return _error_for(err, metrics_reject)
        except StoreError as err:
            await drain_body(request)
            mapped = store_failure(err)
            metrics_reject(mapped.reason)
            _log.warning("store error on %s: %s", request.url.path, err)
            return error_response(mapped.status, mapped.reason, str(mapped))

    return run


def _error_for(err: ServiceError, metrics_reject: Callable[[str], None]) -> Response:
    metrics_reject(err.reason)
    if isinstance(err, BadRequestError):
        return error_response(err.status, err.reason, str(err), err.fields)
    return error_response(err.status, err.reason, str(err))


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(
            f"request body of {declared} bytes is over the {limit}-byte limit", reason="too-large"
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(
                f"request body is over the {limit}-byte limit", reason="too-large"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def parse_body(model: type[M], body: bytes) -> M:
    """Validate JSON ``body`` as ``model``; 422 listing ``field: problem`` for each error."""
    try:
        return model.model_validate_json(body)
    except ValidationError as err:
        problems = describe_validation_error(err)
        fields = tuple(
            (".".join(str(p) for p in item["loc"]) or "(body)", item["msg"])
            for item in err.errors()
        )
        raise BadRequestError(
            f"invalid {model.__name__}: " + "; ".join(problems), reason="invalid", fields=fields
        ) from err


class _Handlers:
    """One method per route; each borrows the service and the authenticator."""

    def __init__(
        self,
        service: FederationService,
        auth: CallerAuthenticator,
        *,
        ca_pem: bytes,
        max_body_bytes: int,
    ) -> None:
        self.service = service
        self.auth = auth
        self.metrics = service.metrics
        self.ca_pem = ca_pem
        self.max_body_bytes = max_body_bytes
        self.openapi = json.dumps(openapi_document()).encode()

    async def _body(self, request: Request) -> bytes:
        return await read_body(request, self.max_body_bytes)

    async def _own(self, request: Request, what: str) -> str:
        """The path's cluster, after checking the caller is that cluster's gateway."""
        cluster = str(request.path_params["cluster"])
        caller = await self.auth.cluster_of(request.headers.get("authorization"))
        require_own(caller, cluster, what)
        return cluster

    async def join(self, request: Request) -> Response:
        body = parse_body(JoinRequest, await self._body(request))
        response = await self.service.join(body)
        return JSONResponse(response.model_dump(mode="json"), status_code=201)

    async def ca(self, request: Request) -> Response:
        return Response(self.ca_pem, media_type="application/x-pem-file")

    async def get_bundle(self, request: Request) -> Response:
        text = await self.service.bundle_json(request.path_params["trust_domain"])
        return Response(text, media_type="application/json")

    async def put_bundle(self, request: Request) -> Response:
        caller = await self.auth.cluster_of(request.headers.get("authorization"))
        body = parse_body(BundleUpdateRequest, await self._body(request))
        await self.service.update_bundle(caller, request.path_params["trust_domain"], body)
        return Response(status_code=204)

    async def report(self, request: Request) -> Response:
        cluster = await self._own(request, "health reports")
        raw = await self._body(request)
        body = parse_body(HealthReport, raw)
        await self.service.record_report(cluster, body, raw.decode())
        return Response(status_code=204)

    async def ack(self, request: Request) -> Response:
        cluster = await self._own(request, "snapshot ACKs")
        body = parse_body(Ack, await self._body(request))
        await self.service.record_ack(cluster, body)
        return Response(status_code=204)

    async def snapshot(self, request: Request) -> Response:
        cluster = await self._own(request, "the snapshot")
        after = parse_after(request.query_params.get("after", "-1"))
        wait_s = self.service.settings.long_poll_s
        served = await self.service.publisher.wait_newer(cluster, after, wait_s)
        if served is None:
            return Response(status_code=204)
        self.metrics.pushed(cluster, served.version, self.service.clock())
        headers = {"x-snapshot-version": str(served.version), "vary": "accept-encoding"}
        if accepts_gzip(request.headers.get("accept-encoding")) and served.gzipped:
            headers["content-encoding"] = "gzip"  # compressed once per version, 4x smaller
            return Response(served.gzipped, media_type="application/json", headers=headers)
        return Response(served.body, media_type="application/json", headers=headers)

    async def status(self, request: Request) -> Response:
        self.auth.require_admin(request.headers.get("authorization"))
        return JSONResponse((await self.service.status()).model_dump(mode="json"))

    async def events(self, request: Request) -> Response:
        self.auth.require_admin(request.headers.get("authorization"))
        query = request.query_params
        try:
            after, limit = int(query.get("after", "0")), int(query.get("limit", "100"))
        except ValueError as err:
            raise BadRequestError(
                "after and limit must be integers", fields=(("after/limit", "not an integer"),)
            ) from err
        return JSONResponse((await self.service.timeline(after, limit)).model_dump(mode="json"))

    async def metrics_page(self, request: Request) -> Response:
        return Response(self.metrics.exposition(), media_type="text/plain; version=0.0.4")

    async def openapi_page(self, request: Request) -> Response:
        return Response(self.openapi, media_type="application/json")


def build_app(
    service: FederationService,
    auth: CallerAuthenticator,
    *,
    ca_pem: bytes,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    stream_inbound: InboundSink | None = None,
) -> Starlette:
    """The ASGI app. ``ca_pem`` is the federation's TLS CA, served for fingerprint pinning;
    ``stream_inbound`` stores what snapshot streams receive (run it beside the app; without
    one, or while it is not running, streams are refused with 503)."""
    h = _Handlers(service, auth, ca_pem=ca_pem, max_body_bytes=max_body_bytes)

    def route(path: str, handler: Handler, method: str) -> Route:
        return Route(path, _guarded(h.metrics.reject, handler), methods=[method])

    placement = PlacementHandlers(service, auth, h._body)
    stream = SnapshotStreamEndpoint(
        service, auth, max_message_bytes=max_body_bytes, sink=stream_inbound
    )

    return Starlette(
        routes=[
            route("/v1/join", h.join, "POST"),
            route("/v1/federation/ca.pem", h.ca, "GET"),
            route("/v1/bundles/{trust_domain}", h.get_bundle, "GET"),
            route("/v1/bundles/{trust_domain}", h.put_bundle, "PUT"),
            route("/v1/clusters/{cluster}/reports", h.report, "POST"),
            route("/v1/clusters/{cluster}/snapshot", h.snapshot, "GET"),
            route("/v1/clusters/{cluster}/acks", h.ack, "POST"),
            Route("/v1/clusters/{cluster}/stream", stream, methods=["POST"]),
            route("/v1/status", h.status, "GET"),
            route("/v1/events", h.events, "GET"),
            route("/metrics", h.metrics_page, "GET"),
            route("/openapi.json", h.openapi_page, "GET"),
            *ui_routes(service, auth),  # /ui dashboard, /v1/ui/*, POST /v1/events
            *placement_routes(placement, lambda handler: _guarded(h.metrics.reject, handler)),
        ]
    )
