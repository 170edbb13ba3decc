"""The local control endpoint of a running ``isthmus up`` (what ``isthmus drill`` talks to).

Plain HTTP on 127.0.0.1 (an ephemeral port unless one is given), every request authenticated
with the bearer token published in the lock file (0600). Routes::

    GET  /v1/state                        clusters, drills in force, traffic statistics
    POST /v1/drills/kill-cluster          {"cluster": "gcp-euw1"}
    POST /v1/drills/partition             {"a": "aws-use1", "b": "gcp-euw1"}
    POST /v1/drills/slow                  {"cluster": "azure-weu", "delay_ms": 200}
    POST /v1/drills/heal                  {}

A drill answers ``{"message": ...}`` (200) or ``{"error": ...}`` (400/401/404).
"""

from __future__ import annotations

import hmac
import secrets
from functools import partial
from typing import Any

import hypercorn.trio
import trio
from hypercorn.config import Config as HypercornConfig
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from isthmus.runner.local import DrillError, LocalFederation


def new_control_token() -> str:
    return secrets.token_urlsafe(32)


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise DrillError(f"field {name!r}: a cluster name is required")
    return value


async def _run_drill(local: LocalFederation, kind: str, body: dict[str, Any]) -> str:
    if kind == "kill-cluster":
        return await local.kill_cluster(_field(body, "cluster"))
    if kind == "partition":
        return await local.partition(_field(body, "a"), _field(body, "b"))
    if kind == "slow":
        delay = body.get("delay_ms")
        if not isinstance(delay, int | float) or not 0 <= delay <= 60_000:
            raise DrillError("field 'delay_ms': a number of milliseconds from 0 to 60000")
        return await local.slow(_field(body, "cluster"), delay / 1000)
    if kind == "heal":
        return await local.heal()
    raise DrillError(f"no drill {kind!r} (kill-cluster, partition, slow, heal)")


def build_control_app(local: LocalFederation, token: str) -> Starlette:
    """The ASGI app (see the module docstring)."""

    def authorized(request: Request) -> bool:
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    async def state(request: Request) -> Response:
        if not authorized(request):
            return JSONResponse({"error": "bearer token required (see up.lock)"}, 401)
        return JSONResponse(local.describe())

    async def drill(request: Request) -> Response:
        if not authorized(request):
            return JSONResponse({"error": "bearer token required (see up.lock)"}, 401)
        try:
            message = await _run_drill(local, request.path_params["kind"], await _body(request))
        except DrillError as err:
            return JSONResponse({"error": str(err)}, 400)
        return JSONResponse({"message": message})

    return Starlette(
        routes=[
            Route("/v1/state", state, methods=["GET"]),
            Route("/v1/drills/{kind}", drill, methods=["POST"]),
        ]
    )


async def serve_control(
    local: LocalFederation,
    token: str,
    port: int = 0,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; ``started`` with the base URL."""
    config = HypercornConfig()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.loglevel = "WARNING"
    config.graceful_timeout = 0.5
    app = build_control_app(local, token)
    serve = partial(hypercorn.trio.serve, app, config, mode="asgi")  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(serve)
        task_status.started(str(binds[0]))
