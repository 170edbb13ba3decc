"""The dashboard's routes: ``/ui`` (page, login, static files), ``/v1/ui/state``,
``/v1/ui/stream`` and ``POST /v1/events``.

:func:`ui_routes` borrows the federation's service and authenticator; the federation app mounts
the list next to its own routes. Errors are the API's JSON ``{"error": {...}}`` shape; pages
that need a login redirect to ``/ui/login`` instead. Every HTML answer carries a strict
Content-Security-Policy (scripts and styles from this origin only; nothing external).
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from importlib import resources
from urllib.parse import parse_qs

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from federation.model.base import describe_validation_error
from federation.service.auth import CallerAuthenticator
from federation.service.core import FederationService
from federation.service.errors import (
    BadRequestError,
    PayloadTooLargeError,
    ServiceError,
)
from federation.store import StoreError
from federation.ui.access import COOKIE_NAME, DashboardAccess, clear_cookie_header, cookie_header
from federation.ui.events import MAX_EVENT_BYTES, ExternalEvent
from federation.ui.gather import DashboardSource
from federation.ui.stream import StateStream

STATIC_FILES = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}
MAX_LOGIN_BYTES = 8 * 1024
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}
Handler = Callable[[Request], Awaitable[Response]]


def asset(name: str) -> bytes:
    """A file shipped in this package (``index.html``, ``dashboard.js``, ...)."""
    return resources.files("federation.ui").joinpath(name).read_bytes()


def _guard(handler: Handler) -> Handler:
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except ServiceError as err:
            body = {"error": {"reason": err.reason, "message": str(err), "fields": []}}
            return JSONResponse(body, status_code=err.status)
        except StoreError as err:
            body = {"error": {"reason": "store", "message": f"the store failed: {err}"}}
            return JSONResponse(body, status_code=503)

    return run


async def _read_limited(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"body is over the {limit}-byte limit", reason="too-large")
        chunks.append(chunk)
    return b"".join(chunks)


class _UiHandlers:
    def __init__(self, service: FederationService, auth: CallerAuthenticator) -> None:
        self.service = service
        self.auth = auth
        self.access = DashboardAccess(auth, clock=service.clock)
        self.source = DashboardSource(service)

    def _logged_in(self, request: Request) -> bool:
        return self.access.session_valid(request.cookies.get(COOKIE_NAME))

    async def page(self, request: Request) -> Response:
        if not self._logged_in(request):
            return RedirectResponse("/ui/login", status_code=303, headers=SECURITY_HEADERS)
        return Response(asset("index.html"), media_type="text/html", headers=SECURITY_HEADERS)

    def _login_page(self, message: str, status: int) -> Response:
        text = asset("login.html").decode().replace("{{message}}", html.escape(message))
        return Response(text, status_code=status, media_type="text/html", headers=SECURITY_HEADERS)

    def _start_session(self, token: str = "", ticket: str = "") -> Response:
        try:
            session = self.access.login(token.strip(), ticket=ticket.strip())
        except ServiceError:
            if ticket:
                return self._login_page("That dashboard link has expired or is not ours.", 401)
            return self._login_page("That is not this federation's admin token.", 401)
        response = RedirectResponse("/ui", status_code=303, headers=SECURITY_HEADERS)
        response.headers["set-cookie"] = cookie_header(session)
        return response

    async def login_get(self, request: Request) -> Response:
        token = request.query_params.get("token")
        ticket = request.query_params.get("ticket")
        if token or ticket:
            return self._start_session(token or "", ticket or "")
        return self._login_page("", 200)

    async def login_post(self, request: Request) -> Response:
        form = parse_qs((await _read_limited(request, MAX_LOGIN_BYTES)).decode(errors="replace"))
        return self._start_session((form.get("token") or [""])[0])

    async def logout(self, request: Request) -> Response:
        self.access.logout(request.cookies.get(COOKIE_NAME))
        response = RedirectResponse("/ui/login", status_code=303, headers=SECURITY_HEADERS)
        response.headers["set-cookie"] = clear_cookie_header()
        return response

    async def static(self, request: Request) -> Response:
        name = str(request.path_params["name"])
        if name not in STATIC_FILES:
            return Response("not found", status_code=404)
        return Response(asset(name), media_type=STATIC_FILES[name], headers=SECURITY_HEADERS)

    async def state(self, request: Request) -> Response:
        self.access.require_viewer(request.cookies, request.headers.get("authorization"))
        return JSONResponse(await self.source.state(), headers={"cache-control": "no-store"})

    async def post_event(self, request: Request) -> Response:
        self.auth.require_admin(request.headers.get("authorization"))
        raw = await _read_limited(request, MAX_EVENT_BYTES)
        try:
            event = ExternalEvent.model_validate_json(raw)
        except ValidationError as err:
            problems = describe_validation_error(err)
            raise BadRequestError("invalid event: " + "; ".join(problems)) from err
        detail = {**event.detail, "external": True}
        now = self.service.clock()
        event_id = await self.service.store.append_event(event.kind, event.subject, detail, now)
        return JSONResponse({"id": event_id, "at": now}, status_code=201)


def ui_routes(service: FederationService, auth: CallerAuthenticator) -> list[BaseRoute]:
    """The dashboard's routes, to add to the federation app's route list."""
    h = _UiHandlers(service, auth)
    return [
        Route("/ui", _guard(h.page), methods=["GET"]),
        Route("/ui/", _guard(h.page), methods=["GET"]),
        Route("/ui/login", _guard(h.login_get), methods=["GET"]),
        Route("/ui/login", _guard(h.login_post), methods=["POST"]),
        Route("/ui/logout", _guard(h.logout), methods=["POST"]),
        Route("/ui/static/{name}", _guard(h.static), methods=["GET"]),
        Route("/v1/ui/state", _guard(h.state), methods=["GET"]),
        Route("/v1/ui/stream", StateStream(h.access, h.source), methods=["GET"]),
        Route("/v1/events", _guard(h.post_event), methods=["POST"]),
    ]
