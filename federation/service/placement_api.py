"""The declared-services and placement routes of the federation API (admin bearer token).

* ``PUT /v1/services/{name}`` — declare or replace a service: the body is a
  :class:`~federation.model.placement.ServicePolicy` (``name`` may be left out; if given it must
  equal the path). Unknown fields, wrong types or a name mismatch: 422 naming the field, nothing
  stored. 200 with the stored policy.
* ``DELETE /v1/services/{name}`` — 204, or 404 if it was never declared.
* ``GET /v1/services`` — ``{"services": [policy, ...]}`` by name.
* ``GET /v1/services/{name}`` — one declared policy; 404 if it was never declared.
* ``GET /v1/placement`` — the leader's last decisions: ``placements``, ``traffic``,
  ``unschedulable`` (plus ``explanations`` with ``?explanations=true``), the JSON shape of
  ``isthmus plan --output json``.
* ``GET /v1/placement/{service}`` — one service's decision with its explanations; 404 if the
  service has no decision (not declared, or not planned yet).

Every route needs the admin token: placement decisions reveal the whole topology. Decisions are
read from the store, so every replica answers them, not just the leader.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from federation.model.placement import ServicePolicy
from federation.service.errors import BadRequestError, NotFoundError

Handler = Callable[[Request], Awaitable[Response]]


class PlacementHandlers:
    """One method per route. ``service`` is the app's ``FederationService``, ``auth`` its
    ``CallerAuthenticator``, ``read_body(request) -> bytes`` enforces the size cap."""

    def __init__(
        self, service: Any, auth: Any, read_body: Callable[[Request], Awaitable[bytes]]
    ) -> None:
        self.service = service
        self.auth = auth
        self.read_body = read_body

    def _admin(self, request: Request) -> None:
        self.auth.require_admin(request.headers.get("authorization"))

    async def put_service(self, request: Request) -> Response:
        from federation.service.app import parse_body

        self._admin(request)
        name = str(request.path_params["name"])
        raw = await self.read_body(request)
        try:
            data = json.loads(raw)
        except ValueError as err:
            raise BadRequestError(
                f"body is not JSON: {err}", reason="invalid", fields=(("(body)", "not JSON"),)
            ) from err
        if isinstance(data, dict):
            data.setdefault("name", name)
            if data["name"] != name:
                raise BadRequestError(
                    f"name: {data['name']!r} differs from the path's {name!r}",
                    reason="invalid",
                    fields=(("name", "differs from the path"),),
                )
        policy = parse_body(ServicePolicy, json.dumps(data).encode())
        await self.service.store.put_service(name, policy.model_dump_json(), self.service.clock())
        return JSONResponse(policy.model_dump(mode="json"))

    async def delete_service(self, request: Request) -> Response:
        self._admin(request)
        name = str(request.path_params["name"])
        if not await self.service.store.delete_service(name):
            raise NotFoundError(f"service {name!r} is not declared", reason="unknown-service")
        return Response(status_code=204)

    async def list_services(self, request: Request) -> Response:
        self._admin(request)
        records = await self.service.store.list_services()
        return JSONResponse({"services": [json.loads(r.policy) for r in records]})

    async def get_service(self, request: Request) -> Response:
        self._admin(request)
        name = str(request.path_params["name"])
        for record in await self.service.store.list_services():
            if record.name == name:
                return JSONResponse(json.loads(record.policy))
        raise NotFoundError(f"service {name!r} is not declared", reason="unknown-service")

    async def _decisions(self) -> dict[str, dict[str, Any]]:
        return {
            r.service: json.loads(r.decision) for r in await self.service.store.list_decisions()
        }

    async def placement(self, request: Request) -> Response:
        self._admin(request)
        with_explanations = request.query_params.get("explanations", "") in ("1", "true", "yes")
        return JSONResponse(placement_document(await self._decisions(), with_explanations))

    async def placement_of(self, request: Request) -> Response:
        self._admin(request)
        name = str(request.path_params["service"])
        decision = (await self._decisions()).get(name)
        if decision is None:
            raise NotFoundError(
                f"no placement decision for {name!r}: declare it (PUT /v1/services/{name}) "
                "and wait for the leader to plan",
                reason="unknown-service",
            )
        return JSONResponse(decision)


def placement_document(decisions: dict[str, dict[str, Any]], explanations: bool) -> dict[str, Any]:
    """Stored decisions in the shape of ``isthmus plan --output json``."""
    data: dict[str, Any] = {
        "placements": {name: d.get("placement", {}) for name, d in sorted(decisions.items())},
        "traffic": {name: d.get("traffic", {}) for name, d in sorted(decisions.items())},
        "unschedulable": {
            name: d["unschedulable"]
            for name, d in sorted(decisions.items())
            if d.get("unschedulable")
        },
        "decided_at": max((d.get("decided_at", 0.0) for d in decisions.values()), default=None),
    }
    if explanations:
        data["explanations"] = {
            name: d.get("explanations", {}) for name, d in sorted(decisions.items())
        }
    return data


def placement_routes(
    handlers: PlacementHandlers, wrap: Callable[[Handler], Handler]
) -> list[Route]:
    """The routes above, each passed through ``wrap`` (the app's error mapping)."""
    return [
        Route("/v1/services", wrap(handlers.list_services), methods=["GET"]),
        Route("/v1/services/{name}", wrap(handlers.get_service), methods=["GET"]),
        Route("/v1/services/{name}", wrap(handlers.put_service), methods=["PUT"]),
        Route("/v1/services/{name}", wrap(handlers.delete_service), methods=["DELETE"]),
        Route("/v1/placement", wrap(handlers.placement), methods=["GET"]),
        Route("/v1/placement/{service}", wrap(handlers.placement_of), methods=["GET"]),
    ]
