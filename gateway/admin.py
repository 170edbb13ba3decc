"""The admin API (port 15000): ``/healthz``, ``/readyz``, ``/metrics``, ``/config``.

``/config`` is the active routing table, the last reload error, peer health and (``live``)
what the load balancer does right now: each service's per-level traffic share, panic flags
and endpoint health.

A plain ASGI app (no framework: four read-only endpoints) served by hypercorn's trio worker.
It handles the ASGI lifespan protocol so hypercorn starts and stops it cleanly. Only ``GET`` and
``HEAD`` are answered; everything else is 405.
"""

from __future__ import annotations

import dataclasses
import json
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio
from hypercorn.config import Config, Sockets
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from gateway.status import GatewayStatus
from proxy.routes import RoutingTable

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def table_to_json(table: RoutingTable) -> dict[str, Any]:
    """The active routing table as plain JSON types (frozensets become sorted lists)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, frozenset | set):
            return sorted(plain(item) for item in value)
        if isinstance(value, tuple | list):
            return [plain(item) for item in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        return value

    return {
        "version": table.version,
        "local_cluster": table.local_cluster,
        "domain_suffix": table.domain_suffix,
        "routes": {name: plain(route) for name, route in sorted(table.routes.items())},
    }


class AdminApp:
    """ASGI app over a :class:`GatewayStatus` and a Prometheus registry (read-only)."""

    def __init__(
        self,
        status: GatewayStatus,
        registry: CollectorRegistry,
        live: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._status = status
        self._registry = registry
        self._live = live

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _route(self, path: str) -> tuple[int, str, bytes]:
        if path == "/healthz":
            return 200, "text/plain; charset=utf-8", b"ok\n"
        if path == "/readyz":
            ready, reason = self._status.readiness()
            return (200 if ready else 503), "text/plain; charset=utf-8", f"{reason}\n".encode()
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self._registry)
        if path == "/config":
            table = self._status.table
            doc: dict[str, Any] = {"table": None if table is None else table_to_json(table)}
            doc["last_reload_error"] = self._status.last_reload_error
            doc["reloads"] = self._status.reloads
            doc["peer_health"] = self._status.peer_health
            if self._status.federation is not None:
                doc["federation"] = self._status.federation()
            if self._live is not None:
                doc["live"] = self._live()
            body = json.dumps(doc, indent=2).encode() + b"\n"
            return 200, "application/json", body
        return 404, "text/plain; charset=utf-8", f"no admin endpoint {path}\n".encode()

    async def _http(self, scope: Scope, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            status, ctype, body = 405, "text/plain; charset=utf-8", b"method not allowed\n"
        else:
            status, ctype, body = self._route(scope["path"])
        headers = [
            (b"content-type", ctype.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        payload = b"" if scope["method"] == "HEAD" else body
        await send({"type": "http.response.body", "body": payload})


def bind_admin_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket for the admin API (the caller hands it to :func:`serve_admin`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.setblocking(False)
    sock.listen(128)
    return sock


AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def serve_admin(
    app: AsgiApp,
    sock: socket.socket,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``sock`` with hypercorn's trio worker until ``shutdown`` is set.

    ``task_status.started`` receives hypercorn's bind URLs. Takes ownership of ``sock``."""
    config = Config()
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 1.0
    sockets = Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[])
    await worker_serve(
        wrap_app(app, config.wsgi_max_body_size, "asgi"),  # type: ignore[arg-type]
        config,
        sockets=sockets,
        shutdown_trigger=shutdown.wait,
        task_status=task_status,
    )
