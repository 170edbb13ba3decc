"""The runner's operator calls to its federation: declare services, read placement, post
timeline events. HTTPS pinned to the federation's own CA, the admin bearer token.

Endpoints that an older federation lacks (404/405) are reported as ``None`` / ``False`` rather
than raised: the runner then falls back to its own static placement, and drills still run.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

import httpx

log = logging.getLogger(__name__)


class FederationAdmin:
    """One HTTP/2 client to the federation; close with :meth:`aclose`."""

    def __init__(self, url: str, ca_pem: bytes, admin_token: str) -> None:
        context = ssl.create_default_context(cadata=ca_pem.decode())
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        self.url = url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.url,
            verify=context,
            http2=True,
            timeout=5.0,
            headers={"authorization": f"Bearer {admin_token}"},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def declare_service(self, name: str, policy: dict[str, Any]) -> bool:
        """``PUT /v1/services/{name}``; False when the federation has no such endpoint or
        refused it (logged with its reason)."""
        try:
            response = await self._client.put(f"/v1/services/{name}", json=policy)
        except httpx.HTTPError as err:
            log.warning("declaring %s failed: %s", name, err)
            return False
        if response.status_code >= 400:
            level = logging.DEBUG if response.status_code in (404, 405) else logging.WARNING
            log.log(level, "declaring %s: %d %s", name, response.status_code, response.text[:300])
            return False
        return True

    async def placement(self) -> dict[str, set[str]] | None:
        """Service -> clusters its replicas should run in, per ``GET /v1/placement``; ``None``
        when the federation has no placement (yet) or is unreachable."""
        try:
            response = await self._client.get("/v1/placement")
        except httpx.HTTPError as err:
            log.debug("placement unavailable: %s", err)
            return None
        if response.status_code != 200:
            return None
        try:
            return clusters_by_service(response.json())
        except ValueError as err:
            log.warning("placement answer not understood: %s", err)
            return None

    async def post_event(
        self, action: str, subject: str, message: str, **detail: str | int | float | bool
    ) -> bool:
        """``POST /v1/events`` as a ``drill`` event (the dashboard timeline): ``subject`` is
        the cluster(s), ``detail`` carries the action and the message. False when refused."""
        body = {
            "kind": "drill",
            "subject": subject,
            "detail": {"action": action, "message": message[:1000], **detail},
        }
        try:
            response = await self._client.post("/v1/events", json=body)
        except httpx.HTTPError as err:
            log.debug("event not posted: %s", err)
            return False
        if response.status_code >= 300:
            log.debug("event refused: %d %s", response.status_code, response.text[:300])
        return response.status_code < 300

    async def get_json(self, path: str) -> Any:
        response = await self._client.get(path)
        response.raise_for_status()
        return response.json()


def _clusters_of(entry: Any) -> set[str]:
    """The clusters of one service's placement entry, in any of the shapes we accept:
    ``{cluster: replicas}`` (the federation's), a list of names, ``{"clusters": [...]}``, or
    ``{"clusters": {name: weight}}``."""
    if isinstance(entry, dict) and all(isinstance(v, int | float) for v in entry.values()):
        return {name for name, count in entry.items() if count}
    if isinstance(entry, list):
        return {c if isinstance(c, str) else str(c.get("cluster", "")) for c in entry} - {""}
    if not isinstance(entry, dict):
        raise ValueError(f"placement entry {entry!r} is neither a list nor an object")
    for key in ("clusters", "placements", "replicas"):
        if key in entry:
            value = entry[key]
            if isinstance(value, dict):
                return {name for name, weight in value.items() if weight}
            return _clusters_of(value)
    raise ValueError(f"placement entry has no clusters: {sorted(entry)}")


def clusters_by_service(doc: Any) -> dict[str, set[str]]:
    """Parse ``GET /v1/placement`` (``{"placements": {service: {cluster: replicas}}}``) into
    service -> clusters. Raises ValueError."""
    services = doc
    if isinstance(doc, dict):
        services = doc["placements"] if "placements" in doc else doc.get("services", doc)
    if isinstance(services, dict):
        return {name: _clusters_of(entry) for name, entry in services.items()}
    if isinstance(services, list):
        result: dict[str, set[str]] = {}
        for entry in services:
            if not isinstance(entry, dict):
                raise ValueError(f"placement entry {entry!r} is not an object")
            name = entry.get("service") or entry.get("name")
            if not isinstance(name, str):
                raise ValueError(f"placement entry without a service name: {sorted(entry)}")
            result[name] = _clusters_of(entry)
        return result
    raise ValueError("placement is neither an object nor a list")
