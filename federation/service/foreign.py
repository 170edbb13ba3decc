"""Foreign trust domains: consume SPIFFE bundle endpoints of other systems (SPIRE's ``https_web``).

A foreign trust domain is one no cluster of this federation owns, e.g. a SPIRE deployment. Its
bundle is fetched with ``GET <bundle_endpoint_url>`` over Web-PKI-verified TLS (the system's
roots, or ``ca_file`` for a private web CA; host name checked; TLS 1.3), parsed with
:func:`federation.trust.parse_bundle` for exactly the configured trust domain, and refreshed
after the bundle's ``spiffe_refresh_hint`` (or the configured ``refresh_s``).

Trust argument (see ``docs/federation.md``, "Foreign trust domains"): SPIRE does not sign bundle
updates with our JWS scheme, so the federation could replace a foreign bundle undetectably. The
federation therefore never puts foreign bundles into gateway snapshots; it only serves them at
``GET /v1/bundles/{td}`` (for operators and SPIFFE consumers that trust the federation anyway). A
gateway that trusts a foreign domain names it *and its endpoint URL* in its own config and
fetches it itself with :func:`fetch_foreign_bundle`; its bundle reconciliation ignores whatever
the federation serves for such a domain. So a compromised federation can neither add nor replace
a foreign trust domain on any gateway.

Pure parts: :func:`refresh_delay`, :func:`check_foreign_update`. Edges: :func:`fetch_foreign_bundle`
and :class:`ForeignBundles` (a trio task per domain, owned by the caller's nursery).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import trio
from pydantic import Field, field_validator

from federation.model.base import FrozenModel
from federation.service.errors import NotFoundError, ServiceError
from federation.trust import BundleError, SpiffeIdError, TrustBundle, TrustDomain, parse_bundle

_log = logging.getLogger(__name__)

#: Refresh when neither the bundle nor the config says (SPIRE's own default hint is 5 minutes).
DEFAULT_REFRESH_S = 300.0
MIN_REFRESH_S = 1.0
MAX_REFRESH_S = 86400.0
#: A bundle endpoint answer larger than this is refused (a bundle is a few KiB).
MAX_BUNDLE_BYTES = 1024 * 1024
FETCH_TIMEOUT_S = 10.0


class ForeignBundleError(ServiceError):
    """A foreign bundle endpoint could not be fetched or served an unusable bundle."""

    status = 502


class ForeignTrustDomain(FrozenModel):
    """One entry of ``foreign_trust_domains`` in ``federation.yaml``."""

    trust_domain: str = Field(description="the SPIFFE trust domain, e.g. spire.example.org")
    bundle_endpoint_url: str = Field(description="https URL of its SPIFFE bundle endpoint")
    ca_file: Path | None = Field(
        default=None, description="PEM of a private web CA; default: the system's Web-PKI roots"
    )
    refresh_s: float | None = Field(
        default=None,
        ge=MIN_REFRESH_S,
        le=MAX_REFRESH_S,
        description="refresh interval; default: the bundle's spiffe_refresh_hint, else 300 s",
    )

    @field_validator("trust_domain")
    @classmethod
    def _valid_td(cls, value: str) -> str:
        try:
            return TrustDomain.parse(value).name
        except SpiffeIdError as err:
            raise ValueError(str(err)) from err

    @field_validator("bundle_endpoint_url")
    @classmethod
    def _https_only(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(
                f"{value!r}: the https_web profile needs an https:// URL with a host name"
            )
        return value


def refresh_delay(bundle: TrustBundle | None, configured_s: float | None) -> float:
    """Seconds until the next fetch: the config wins, then the bundle's hint, then the default;
    clamped to [1 s, 1 day]."""
    hint = bundle.refresh_hint_s if bundle is not None else None
    chosen = configured_s if configured_s is not None else hint or DEFAULT_REFRESH_S
    return min(MAX_REFRESH_S, max(MIN_REFRESH_S, float(chosen)))


def check_foreign_update(current: TrustBundle | None, offered: TrustBundle) -> TrustBundle:
    """The bundle to keep after a fetch. A lower ``spiffe_sequence`` than the one held is a
    rollback (a stale replica or a replay) and raises :class:`ForeignBundleError`."""
    if current is not None and offered.sequence < current.sequence:
        raise ForeignBundleError(
            f"{offered.trust_domain}: endpoint served sequence {offered.sequence}, below the "
            f"{current.sequence} already held; keeping it (stale endpoint or replay?)",
            reason="foreign-stale-sequence",
        )
    return offered


def web_pki_context(ca_file: Path | None) -> ssl.SSLContext:
    """A client context that verifies the endpoint's web certificate and host name (TLS 1.3)."""
    try:
        context = ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))
    except (OSError, ssl.SSLError) as err:
        raise ForeignBundleError(
            f"ca_file {ca_file}: cannot load it as PEM CA certificates ({err})",
            reason="foreign-ca-file",
        ) from err
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


async def fetch_foreign_bundle(
    source: ForeignTrustDomain, *, client: httpx.AsyncClient | None = None
) -> TrustBundle:
    """``GET`` the bundle endpoint and parse the JWK Set as ``source.trust_domain``'s bundle.

    Raises :class:`ForeignBundleError` naming the URL for TLS/network failures, non-200 answers,
    oversized bodies and bundles that do not parse (or hold another trust domain's CA). A given
    ``client`` is borrowed (its TLS settings are used); otherwise one is made and closed here."""
    url = source.bundle_endpoint_url
    if client is None:
        context = web_pki_context(source.ca_file)
        async with httpx.AsyncClient(verify=context, timeout=FETCH_TIMEOUT_S) as owned:
            return await fetch_foreign_bundle(source, client=owned)
    try:
        async with client.stream("GET", url, headers={"accept": "application/json"}) as answer:
            if answer.status_code != 200:
                raise ForeignBundleError(
                    f"{url}: answered HTTP {answer.status_code}", reason="foreign-http-status"
                )
            body = bytearray()
            async for chunk in answer.aiter_bytes():
                body += chunk
                if len(body) > MAX_BUNDLE_BYTES:
                    raise ForeignBundleError(
                        f"{url}: answer exceeds {MAX_BUNDLE_BYTES} bytes",
                        reason="foreign-too-large",
                    )
    except httpx.HTTPError as err:
        raise ForeignBundleError(
            f"{url}: fetch failed ({type(err).__name__}: {err}); check the URL, that it serves "
            "a web certificate for its host name, and ca_file for a private web CA",
            reason="foreign-unreachable",
        ) from err
    try:
        return parse_bundle(TrustDomain.parse(source.trust_domain), bytes(body))
    except BundleError as err:
        raise ForeignBundleError(f"{url}: {err}", reason="foreign-invalid-bundle") from err


@dataclass(frozen=True)
class ForeignBundleState:
    """What the federation holds of one foreign trust domain (for status and serving)."""

    trust_domain: str
    url: str
    bundle: TrustBundle | None = None
    fetched_at: float | None = None
    next_refresh_at: float | None = None
    failures: int = 0
    last_error: str = ""


class ForeignBundles:
    """Keeps every configured foreign trust domain's bundle fresh. Run with
    ``nursery.start_soon(foreign.run)``; each domain is fetched at once, then per
    :func:`refresh_delay` (after a failure: exponential backoff from 1 s, capped by it).
    Never raises for a fetch failure: the last good bundle stays served and the error is kept
    in :attr:`states`. Every replica fetches for itself (nothing is stored)."""

    def __init__(
        self, sources: Iterable[ForeignTrustDomain], *, clock: Callable[[], float]
    ) -> None:
        self.sources = {s.trust_domain: s for s in sources}
        self._clock = clock
        self.states = {
            td: ForeignBundleState(td, s.bundle_endpoint_url) for td, s in self.sources.items()
        }
        self.changed = trio.Event()

    def trust_domains(self) -> frozenset[str]:
        return frozenset(self.sources)

    def bundle_json(self, trust_domain: str) -> str:
        """The bundle last fetched, as JSON; :class:`NotFoundError` if none (yet)."""
        state = self.states.get(trust_domain)
        if state is None or state.bundle is None:
            raise NotFoundError(
                f"no bundle for trust domain {trust_domain!r}"
                + ("" if state is None else f" yet: {state.last_error or 'not fetched yet'}"),
                reason="unknown-trust-domain",
            )
        return state.bundle.to_json()

    async def refresh(self, trust_domain: str) -> ForeignBundleState:
        """Fetch one domain now; record the outcome (never raises ForeignBundleError)."""
        source, state = self.sources[trust_domain], self.states[trust_domain]
        now = self._clock()
        try:
            fetched = await fetch_foreign_bundle(source)
            bundle = check_foreign_update(state.bundle, fetched)
        except ForeignBundleError as err:
            _log.warning("foreign trust domain %s: %s", trust_domain, err)
            state = ForeignBundleState(
                trust_domain,
                source.bundle_endpoint_url,
                state.bundle,
                state.fetched_at,
                now + self._retry_s(state.failures, state.bundle, source),
                state.failures + 1,
                str(err),
            )
        else:
            state = ForeignBundleState(
                trust_domain,
                source.bundle_endpoint_url,
                bundle,
                now,
                now + refresh_delay(bundle, source.refresh_s),
            )
        self.states[trust_domain] = state
        self.changed.set()
        self.changed = trio.Event()
        return state

    @staticmethod
    def _retry_s(failures: int, bundle: TrustBundle | None, source: ForeignTrustDomain) -> float:
        return min(
            refresh_delay(bundle, source.refresh_s), MIN_REFRESH_S * 2.0 ** min(failures, 20)
        )

    async def _keep_fresh(self, trust_domain: str) -> None:
        while True:
            state = await self.refresh(trust_domain)
            assert state.next_refresh_at is not None
            await trio.sleep(max(0.0, state.next_refresh_at - self._clock()))

    async def run(self) -> None:
        """Refresh every domain until cancelled."""
        async with trio.open_nursery() as nursery:
            for td in sorted(self.sources):
                nursery.start_soon(self._keep_fresh, td)
