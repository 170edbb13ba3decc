"""The OpenAPI 3.1 document served at ``/openapi.json``, built from the pydantic wire models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from federation.model.api import (
    Ack,
    BundleUpdateRequest,
    FederationStatus,
    HealthReport,
    JoinRequest,
    JoinResponse,
    Snapshot,
    Timeline,
)
from federation.model.placement import ServicePolicy
from federation.model.stream import (
    STREAM_MEDIA_TYPE,
    StreamAck,
    StreamBundles,
    StreamBundlesDelta,
    StreamDelta,
    StreamEnd,
    StreamError,
    StreamReply,
    StreamReport,
    StreamSnapshot,
)
from federation.ui.events import ExternalEvent

_MODELS: tuple[type[BaseModel], ...] = (
    JoinRequest,
    JoinResponse,
    HealthReport,
    Snapshot,
    Ack,
    BundleUpdateRequest,
    FederationStatus,
    Timeline,
    ServicePolicy,
    ExternalEvent,
    StreamReport,
    StreamAck,
    StreamBundles,
    StreamBundlesDelta,
    StreamSnapshot,
    StreamDelta,
    StreamReply,
    StreamError,
    StreamEnd,
)
_UP = ("StreamReport", "StreamAck")
_DOWN = (
    "StreamBundles",
    "StreamBundlesDelta",
    "StreamSnapshot",
    "StreamDelta",
    "StreamReply",
    "StreamError",
    "StreamEnd",
)
_REF = "#/components/schemas/"
_ERROR = {
    "description": "error",
    "content": {"application/json": {"schema": {"$ref": f"{_REF}Error"}}},
}


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": _REF + name}}}}


def _ok(name: str | None, description: str = "ok") -> dict[str, Any]:
    if name is None:
        return {"description": description}
    schema = {"$ref": _REF + name}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(
    summary: str,
    *,
    body: str | None = None,
    ok: str | None = None,
    status: str = "200",
    auth: str | None = "gateway",
    params: tuple[str, ...] = (),
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {status: _ok(ok), "4XX": _ERROR}}
    if body is not None:
        op["requestBody"] = _body(body)
    if auth is not None:
        op["security"] = [{auth: []}]
    if params:
        op["parameters"] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in params
        ]
    return op


def _ndjson(names: tuple[str, ...]) -> dict[str, Any]:
    """An NDJSON body: each line one of ``names``."""
    schema = {"oneOf": [{"$ref": _REF + name} for name in names]}
    return {STREAM_MEDIA_TYPE: {"schema": schema, "itemSchema": schema}}


def _stream_op() -> dict[str, Any]:
    op = _op(
        "Full-duplex HTTP/2 stream: snapshots (routing) and bundles pushed down, reports and "
        "ACK/NACKs sent up, one JSON object per line (see docs/federation.md)",
        params=("cluster",),
    )
    op["parameters"] += [
        {"name": "after", "in": "query", "required": False, "schema": {"type": "integer"},
         "description": "the last version this gateway considered; not pushed again"},
        {"name": "bundles", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "digest of the bundles this gateway holds; not sent again"},
        {"name": "deltas", "in": "query", "required": False, "schema": {"type": "integer"},
         "description": "1: after an ACKed version, push routing as 'delta' messages"},
    ]  # fmt: skip
    op["requestBody"] = {"required": True, "content": _ndjson(_UP)}
    op["responses"]["200"] = {
        "description": "the stream; ends with an 'end' message when the opening token expires",
        "content": _ndjson(_DOWN),
    }
    return op


def _paths() -> dict[str, Any]:
    snapshot = _op("Long-poll this cluster's snapshot", ok="Snapshot", params=("cluster",))
    snapshot["parameters"].append(
        {"name": "after", "in": "query", "required": False, "schema": {"type": "integer"}}
    )
    snapshot["responses"]["204"] = _ok(None, "no newer version within the long-poll window")
    return {
        "/v1/join": {
            "post": _op(
                "Join with a single-use token", body="JoinRequest", ok="JoinResponse", auth=None
            )
        },
        "/v1/federation/ca.pem": {
            "get": _op("The federation's TLS CA (pin it by fingerprint)", auth=None)
        },
        "/v1/bundles/{trust_domain}": {
            "get": _op(
                "SPIFFE bundle endpoint (https_web profile)", auth=None, params=("trust_domain",)
            ),
            "put": _op(
                "Publish a signed bundle update for the caller's own trust domain",
                body="BundleUpdateRequest",
                status="204",
                params=("trust_domain",),
            ),
        },
        "/v1/clusters/{cluster}/reports": {
            "post": _op(
                "Health report; renews the lease",
                body="HealthReport",
                status="204",
                params=("cluster",),
            )
        },
        "/v1/clusters/{cluster}/snapshot": {"get": snapshot},
        "/v1/clusters/{cluster}/stream": {"post": _stream_op()},
        "/v1/clusters/{cluster}/acks": {
            "post": _op(
                "ACK or NACK a snapshot version", body="Ack", status="204", params=("cluster",)
            )
        },
        "/v1/status": {"get": _op("Every cluster's state", ok="FederationStatus", auth="admin")},
        "/v1/events": {
            "get": _op("Timeline events after ?after=ID", ok="Timeline", auth="admin"),
            "post": _op(
                "Add an external event (drill, deploy) to the timeline",
                body="ExternalEvent",
                status="201",
                auth="admin",
            ),
        },
        "/metrics": {"get": _op("Prometheus metrics", auth=None)},
        "/openapi.json": {"get": _op("This document", auth=None)},
        **_placement_paths(),
        "/v1/ui/state": {
            "get": _op("The dashboard document (admin token or dashboard session)", auth="admin")
        },
        "/v1/ui/stream": {"get": _op("The dashboard document as server-sent events", auth="admin")},
    }


def _placement_paths() -> dict[str, Any]:
    return {
        "/v1/services": {
            "get": _op("Every declared service: {services: [ServicePolicy]}", auth="admin")
        },
        "/v1/services/{name}": {
            "get": _op(
                "One declared service (404 if never declared)",
                ok="ServicePolicy",
                auth="admin",
                params=("name",),
            ),
            "put": _op(
                "Declare or replace a service (name may be left out of the body)",
                body="ServicePolicy",
                ok="ServicePolicy",
                auth="admin",
                params=("name",),
            ),
            "delete": _op(
                "Forget a declared service (404 if never declared)",
                status="204",
                auth="admin",
                params=("name",),
            ),
        },
        "/v1/placement": {
            "get": _op("The leader's last placement decisions (?explanations=true)", auth="admin")
        },
        "/v1/placement/{service}": {
            "get": _op(
                "One service's decision with its explanations", auth="admin", params=("service",)
            )
        },
    }


def openapi_document(version: str = "1") -> dict[str, Any]:
    """The whole document; component schemas come from the models themselves."""
    _, defs = models_json_schema(
        [(model, "validation") for model in _MODELS], ref_template=_REF + "{model}"
    )
    schemas = dict(defs.get("$defs", {}))
    schemas["Error"] = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "reason": {"type": "string"},
                    "message": {"type": "string"},
                    "fields": {"type": "array", "items": {"type": "object"}},
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Isthmus federation API", "version": version},
        "paths": _paths(),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "gateway": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT-SVID"},
                "admin": {"type": "http", "scheme": "bearer"},
            },
        },
    }
