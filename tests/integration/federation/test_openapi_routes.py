"""``/openapi.json`` documents every API route the app actually serves (UI pages excepted)."""

from __future__ import annotations

import time

import httpx
from starlette.routing import Route

from federation.service.app import build_app
from federation.service.auth import CallerAuthenticator, verify_gateway_jwt
from federation.service.server import RunningFederation


def served_operations(fed: RunningFederation) -> set[tuple[str, str]]:
    auth = CallerAuthenticator(
        fed.service.store,
        audience="federation",
        admin_token="x",
        verify=verify_gateway_jwt,
        clock=time.time,
        max_token_ttl_s=300,
    )
    app = build_app(fed.service, auth, ca_pem=fed.ca_pem)
    served = set()
    for route in app.routes:
        assert isinstance(route, Route), route
        # the dashboard's browser pages (HTML, static files, login) are not the JSON API
        if route.path == "/ui" or route.path.startswith("/ui/"):
            continue
        for method in route.methods or ():
            if method != "HEAD":
                served.add((route.path, method.lower()))
    return served


async def test_every_served_route_is_in_the_openapi_document(
    federation: RunningFederation, api: httpx.AsyncClient
) -> None:
    doc = (await api.get("/openapi.json")).json()
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    served = served_operations(federation)
    assert ("/v1/services/{name}", "put") in served  # the enumeration sees placement routes
    assert ("/v1/ui/stream", "get") in served  # ... and the dashboard's API routes
    missing = served - documented
    assert not missing, f"routes served but not in /openapi.json: {sorted(missing)}"
    stale = documented - served
    assert not stale, f"/openapi.json documents routes the app does not serve: {sorted(stale)}"
    schemas = doc["components"]["schemas"]
    assert {"ServicePolicy", "ExternalEvent"} <= set(schemas)
    put = doc["paths"]["/v1/services/{name}"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ServicePolicy"
    )


async def test_one_declared_service_can_be_read_back(
    federation: RunningFederation, api: httpx.AsyncClient
) -> None:
    admin = {"authorization": f"Bearer {federation.admin_token}"}
    missing = await api.get("/v1/services/checkout.shop", headers=admin)
    assert missing.status_code == 404
    assert "not declared" in missing.json()["error"]["message"]
    put = await api.put("/v1/services/checkout.shop", json={"replicas": 2}, headers=admin)
    assert put.status_code == 200, put.text
    got = await api.get("/v1/services/checkout.shop", headers=admin)
    assert got.status_code == 200
    assert got.json() == put.json()
    assert (await api.get("/v1/services/checkout.shop")).status_code == 401
