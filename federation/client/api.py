"""HTTP calls of a joined gateway to its federation: HTTP/2 over TLS pinned to the join's CA.

:class:`FederationClient` owns one ``httpx.AsyncClient`` (one HTTP/2 connection, reused) and
closes it in ``aclose``/``async with``. Every call authenticates with a short-lived JWT-SVID
signed by the cluster's ``jwt-svid`` key. Errors: :class:`FederationUnavailable` (network,
5xx: retry later) and :class:`FederationRefused` (4xx: the server's reason and message).

Cancellation: a caller cancelled mid-request stops waiting at once, but the HTTP request itself
runs to completion (bounded by the client's timeouts) in a detached task and its answer is
dropped. httpx/httpcore are not cancel-safe on HTTP/2: a request cancelled while its HEADERS
frame is being written leaves the client's HPACK encoder ahead of what the server decoded, and
the server must then close the whole connection (``COMPRESSION_ERROR``/``PROTOCOL_ERROR``),
failing every other stream on it — e.g. the long-poll beside a cancelled report.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import httpx
import trio
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from federation.client.errors import FederationRefused, FederationUnavailable, SnapshotRejected
from federation.client.h2duplex import DuplexError, DuplexRefused, DuplexRequest, open_duplex
from federation.client.state import JoinRecord
from federation.client.stream import BundleState, SnapshotStream
from federation.model.api import Ack, HealthReport, Snapshot
from federation.model.base import describe_validation_error
from federation.model.stream import STREAM_MEDIA_TYPE
from federation.service.tls import pinned_client_context
from federation.trust import SpiffeId
from federation.trust.jwt import mint_jwt_svid

#: JWT-SVIDs are re-minted when less than this fraction of their life is left.
_RENEW_FRACTION = 0.5


def _loose_version(body: bytes) -> int | None:
    """The ``version`` of a snapshot body that failed validation, if it has a usable one."""
    try:
        version = json.loads(body).get("version")
    except (ValueError, AttributeError):
        return None
    return version if isinstance(version, int) and version >= 0 else None


def refusal(response: httpx.Response) -> FederationRefused:
    """A :class:`FederationRefused` from an error response's JSON body (or its text)."""
    return refusal_of(response.status_code, response.content)


def refusal_of(status: int, body: bytes) -> FederationRefused:
    """A :class:`FederationRefused` from an error status and its JSON body (or its text)."""
    try:
        error = json.loads(body)["error"]
        reason, message = str(error["reason"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        reason, message = "http-error", body[:500].decode(errors="replace")
    return FederationRefused(status, reason, f"federation: {message}")


class FederationClient:
    """One gateway's connection to its federation (see module docstring for ownership)."""

    def __init__(
        self,
        record: JoinRecord,
        *,
        jwt_key: ec.EllipticCurvePrivateKey,
        kid: str,
        long_poll_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.record = record
        self._key = jwt_key
        self._kid = kid
        self._clock = clock
        self._subject = SpiffeId.parse(
            f"spiffe://{record.trust_domain}/isthmus/gateway/{record.cluster}"
        )
        self._ttl_s = min(record.max_token_ttl_s, 300)
        self._token: tuple[str, float] | None = None
        self._urls = record.urls
        self._url_index = 0
        self._stream_tls = pinned_client_context(record.ca_pem.encode(), record.ca_fingerprint)
        self._http = http or httpx.AsyncClient(
            base_url=self._urls[0],
            verify=pinned_client_context(record.ca_pem.encode(), record.ca_fingerprint),
            http2=True,
            timeout=httpx.Timeout(10.0, read=long_poll_s + 15.0),
        )

    async def __aenter__(self) -> FederationClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _authorization(self, *, fresh: bool = False) -> dict[str, str]:
        now = self._clock()
        if fresh or self._token is None or now >= self._token[1]:
            token = mint_jwt_svid(
                self._key,
                self._kid,
                self._subject,
                self.record.audience,
                now=datetime.fromtimestamp(now, UTC),
                ttl=timedelta(seconds=self._ttl_s),
            )
            self._token = (token, now + self._ttl_s * _RENEW_FRACTION)
        return {"authorization": f"Bearer {self._token[0]}"}

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """``self._http.request`` that a caller's cancellation never interrupts mid-flight (see
        the module docstring): the request runs in a trio system task; a cancelled caller just
        stops waiting. Exceptions of the request are re-raised here."""
        done = trio.Event()
        result: list[httpx.Response] = []
        failure: list[Exception] = []

        async def detached() -> None:
            try:
                result.append(await self._http.request(method, path, **kwargs))
            except Exception as err:  # handed to the waiting caller, or dropped if it left
                failure.append(err)
            finally:
                done.set()

        trio.lowlevel.spawn_system_task(detached, name=f"federation {method} {path}")
        await done.wait()
        if failure:
            raise failure[0]
        return result[0]

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self._authorization(), **kwargs.pop("headers", {})}
        url = self.url
        try:
            response = await self._request(method, path, headers=headers, **kwargs)
        except httpx.TransportError as err:
            self._fail_over(url)
            raise FederationUnavailable(f"federation {url} unreachable: {err!r}") from err
        if response.status_code >= 500:
            self._fail_over(url)
            raise FederationUnavailable(f"federation {url} answered {response.status_code}")
        if response.status_code >= 400:
            raise refusal(response)
        return response

    @property
    def url(self) -> str:
        """The replica requests go to now."""
        return self._urls[self._url_index]

    def _fail_over(self, failed: str) -> None:
        """Send the next requests to the next replica (round robin; same pinned CA). Only a
        failure at the current replica moves on, so concurrent failures move once."""
        if len(self._urls) > 1 and failed == self.url:
            self._url_index = (self._url_index + 1) % len(self._urls)
            self._http.base_url = httpx.URL(self.url)

    @property
    def _cluster_path(self) -> str:
        return f"/v1/clusters/{self.record.cluster}"

    async def report(self, report: HealthReport) -> None:
        """Send a health report (renews the cluster's lease)."""
        await self._call(
            "POST",
            f"{self._cluster_path}/reports",
            content=report.model_dump_json(),
            headers={"content-type": "application/json"},
        )

    async def watch_once(self, after: int) -> Snapshot | None:
        """One long-poll: the snapshot once its version differs from ``after``, or ``None`` if
        nothing changed within the server's window."""
        response = await self._call(
            "GET", f"{self._cluster_path}/snapshot", params={"after": after}
        )
        if response.status_code == 204:
            return None
        try:
            return Snapshot.model_validate_json(response.content)
        except ValidationError as err:
            problems = "; ".join(describe_validation_error(err)[:5])
            raise SnapshotRejected(
                f"snapshot is not valid: {problems}", version=_loose_version(response.content)
            ) from err

    async def ack(self, version: int, ok: bool, error: str = "") -> None:
        """ACK (``ok``) or NACK (with ``error``) a snapshot version."""
        body = Ack(version=version, ok=ok, error=error[:4000])
        await self._call(
            "POST",
            f"{self._cluster_path}/acks",
            content=body.model_dump_json(),
            headers={"content-type": "application/json"},
        )

    async def publish_bundle_update(self, signed_update: bytes | str) -> None:
        """Publish a signed update of this cluster's own bundle."""
        text = signed_update.decode() if isinstance(signed_update, bytes) else signed_update
        await self._call(
            "PUT", f"/v1/bundles/{self.record.trust_domain}", json={"signed_update": text}
        )

    async def open_stream(
        self, nursery: trio.Nursery, *, after: int, bundles: BundleState
    ) -> SnapshotStream:
        """Open the snapshot stream (one HTTP/2 connection of its own; its reader task runs in
        ``nursery``; close it with ``aclose``). ``after``: the last version this gateway
        considered; ``bundles``: what it holds (an unchanged bundle set is not re-sent). It is
        authenticated once with a fresh JWT-SVID; the federation ends it when that expires.
        Raises :class:`FederationUnavailable` (network, 5xx: the next replica is tried next) or
        :class:`FederationRefused` (4xx)."""
        url = self.url
        query = urlencode({"after": after, "bundles": bundles.digest, "deltas": 1})
        headers = (
            ("authorization", self._authorization(fresh=True)["authorization"]),
            ("content-type", STREAM_MEDIA_TYPE),
        )
        request = DuplexRequest(f"{url}{self._cluster_path}/stream?{query}", headers)
        try:
            duplex = await open_duplex(request, self._stream_tls, nursery)
        except DuplexRefused as err:
            if err.status < 500:
                raise refusal_of(err.status, err.body) from err
            self._fail_over(url)
            raise FederationUnavailable(f"federation {url} answered {err.status}") from err
        except DuplexError as err:
            self._fail_over(url)
            raise FederationUnavailable(f"federation {url} unreachable: {err}") from err
        return SnapshotStream(duplex, bundles)
