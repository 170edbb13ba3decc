"""Who is calling: gateways by JWT-SVID, operators by an admin bearer token.

hypercorn does not hand the TLS client certificate to the ASGI app, so gateways prove their
SPIFFE identity with a short-lived JWT-SVID signed by a ``jwt-svid`` key of their own trust
domain's registered bundle, with the federation as audience. The token's subject must be a
gateway ID ``spiffe://<td>/isthmus/gateway/<cluster>`` of a joined cluster whose trust domain is
``<td>``. Operators use a separate random token stored 0600 in the state directory.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio

from federation.errors import FederationError
from federation.service.errors import AuthenticationError, PermissionDeniedError
from federation.store import Store
from federation.trust import (
    BundleError,
    BundleSet,
    SpiffeId,
    TrustBundle,
    TrustDomain,
    parse_bundle,
)
from federation.trust.files import PRIVATE_MODE, write_file
from federation.trust.jwt import verify_jwt_svid

#: ``verify(token, bundles, audience, now) -> subject``; raises a FederationError on failure.
JwtVerifier = Callable[[str, BundleSet, str, float], SpiffeId]


def verify_gateway_jwt(token: str, bundles: BundleSet, audience: str, now: float) -> SpiffeId:
    """The default :data:`JwtVerifier`: :func:`federation.trust.jwt.verify_jwt_svid`."""
    return verify_jwt_svid(token, bundles, audience, datetime.fromtimestamp(now, UTC))


_MAX_CACHED_TOKENS = 100_000
ADMIN_TOKEN_FILE = "admin.token"  # noqa: S105 - a file name
_GATEWAY_PREFIX = "/isthmus/gateway/"


def ensure_admin_token(state_dir: Path) -> str:
    """The operators' bearer token, created (0600) on first start and kept afterwards."""
    path = state_dir / ADMIN_TOKEN_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    token = secrets.token_urlsafe(32)
    write_file(path, (token + "\n").encode(), mode=PRIVATE_MODE)
    return token


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; 401 if absent or malformed."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError(
            "missing 'Authorization: Bearer <token>' header", reason="no-credential"
        )
    return token.strip()


def unverified_claims(token: str) -> dict[str, Any]:
    """The JWT payload *without* checking the signature: only to pick the bundle to verify with,
    or to read claims of a token that already verified."""
    parts = token.split(".")
    if len(parts) != 3:
        raise AuthenticationError("bearer token is not a JWT (expected 3 parts)", reason="bad-jwt")
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (binascii.Error, ValueError) as err:
        raise AuthenticationError(
            "bearer token payload is not base64url JSON", reason="bad-jwt"
        ) from err
    if not isinstance(claims, dict):
        raise AuthenticationError("bearer token payload is not a JSON object", reason="bad-jwt")
    return claims


def dashboard_ticket(admin_token: str, expires_at: int) -> str:
    """A login ticket for the dashboard, valid until ``expires_at`` (epoch seconds): an HMAC of
    the expiry under the admin token, so any replica can check it and nothing is stored. It is
    what ``isthmus up`` prints instead of the admin token itself."""
    mac = hmac.new(admin_token.encode(), f"isthmus-ui-ticket:{expires_at}".encode(), "sha256")
    return f"{expires_at}.{mac.hexdigest()}"


@dataclass(frozen=True)
class _Verified:
    cluster: str
    trust_domain: str
    expires_at: float


class CallerAuthenticator:
    """Maps a request's credential to a cluster name (gateways) or to the admin role.

    A verified JWT-SVID is remembered by its exact text until it expires, so a gateway reusing
    its token costs no signature check and no store read per request. Run
    :meth:`follow_changes` beside it (the server does): a changed bundle of a trust domain (a
    rotated or removed ``jwt-svid`` key) or a changed registration of a cluster forgets every
    token verified for it, so the next request is verified against what is stored now."""

    def __init__(
        self,
        store: Store,
        *,
        audience: str,
        admin_token: str,
        verify: JwtVerifier,
        clock: Callable[[], float],
        max_token_ttl_s: int,
    ) -> None:
        self._store = store
        self._audience = audience
        self._admin_token = admin_token
        self._verify = verify
        self._clock = clock
        self._max_ttl = max_token_ttl_s
        self._verified: dict[str, _Verified] = {}
        self._bundles: dict[str, tuple[str, TrustBundle]] = {}
        #: bumped for every bundle or cluster change seen: a verification that read the store
        #: before a change is not remembered after it
        self._changes_seen = 0

    def require_admin(self, authorization: str | None) -> None:
        """Pass for the admin token; else 401."""
        token = bearer_token(authorization)
        if not hmac.compare_digest(token.encode(), self._admin_token.encode()):
            raise AuthenticationError(
                "not the admin token (see admin.token in the federation's state directory)",
                reason="bad-admin-token",
            )

    def require_dashboard_ticket(self, ticket: str) -> None:
        """Pass for an unexpired ticket of :func:`dashboard_ticket` made with this admin token;
        else 401. A ticket opens a dashboard session only: it is no API credential."""
        expires, _, _mac = ticket.partition(".")
        if not expires.isdigit() or int(expires) <= self._clock():
            raise AuthenticationError("the dashboard ticket has expired", reason="bad-ticket")
        expected = dashboard_ticket(self._admin_token, int(expires))
        if not hmac.compare_digest(ticket.encode(), expected.encode()):
            raise AuthenticationError(
                "not a dashboard ticket of this federation", reason="bad-ticket"
            )

    async def follow_changes(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Forget the tokens verified for a trust domain whose bundle changed, or for a cluster
        whose registration changed, as the store announces it (on PostgreSQL: a change made
        through any replica). ``started`` once following; never returns."""
        async with self._store.changes() as feed:
            task_status.started()
            async for change in feed:
                if change.kind in ("bundle", "cluster"):
                    self.forget(change.kind, change.subject)

    def forget(self, kind: str, subject: str) -> None:
        """Drop the verified tokens of trust domain (``kind="bundle"``) or cluster
        (``"cluster"``) ``subject``."""
        self._changes_seen += 1
        if kind == "bundle":
            stale = [t for t, v in self._verified.items() if v.trust_domain == subject]
        else:
            stale = [t for t, v in self._verified.items() if v.cluster == subject]
        for token in stale:
            del self._verified[token]

    async def cluster_of(self, authorization: str | None) -> str:
        """The joined cluster whose gateway signed the bearer JWT-SVID; 401 otherwise.

        A verified token is remembered until it expires, unless its trust domain's bundle or
        its cluster changes first (see :meth:`follow_changes`)."""
        token = bearer_token(authorization)
        now = self._clock()
        cached = self._verified.get(token)
        if cached is not None and now < cached.expires_at:
            return cached.cluster
        changes_seen = self._changes_seen
        subject = self._claimed_subject(token)
        bundle = await self._bundle(subject.trust_domain.name)
        try:
            verified = self._verify(token, BundleSet([bundle]), self._audience, now)
        except FederationError as err:
            raise AuthenticationError(f"JWT-SVID rejected: {err}", reason="bad-jwt") from err
        claims = unverified_claims(token)  # verified above: safe to read now
        lifetime = float(claims.get("exp", 0)) - float(claims.get("iat", 0))
        if lifetime > self._max_ttl:
            raise AuthenticationError(
                f"JWT-SVID lives {lifetime:.0f}s; the federation accepts at most {self._max_ttl}s",
                reason="jwt-ttl-too-long",
            )
        cluster = await self._cluster_for(verified)
        if changes_seen == self._changes_seen:  # else it may have read what just changed
            if len(self._verified) >= _MAX_CACHED_TOKENS:
                self._verified.clear()
            td = verified.trust_domain.name
            self._verified[token] = _Verified(cluster, td, float(claims["exp"]))
        return cluster

    async def _bundle(self, trust_domain: str) -> TrustBundle:
        record = await self._store.get_bundle(trust_domain)
        if record is None:
            raise AuthenticationError(
                f"no bundle registered for trust domain {trust_domain}; join first",
                reason="unknown-trust-domain",
            )
        cached = self._bundles.get(trust_domain)
        if cached is not None and cached[0] == record.bundle:
            return cached[1]
        try:
            parsed = parse_bundle(TrustDomain.parse(trust_domain), record.bundle)
        except (BundleError, FederationError) as err:
            raise AuthenticationError(
                f"stored bundle of {trust_domain} is unusable: {err}", reason="bad-bundle"
            ) from err
        self._bundles[trust_domain] = (record.bundle, parsed)
        return parsed

    def _claimed_subject(self, token: str) -> SpiffeId:
        try:
            return SpiffeId.parse(str(unverified_claims(token).get("sub", "")))
        except FederationError as err:
            raise AuthenticationError(f"JWT-SVID subject: {err}", reason="bad-jwt") from err

    async def _cluster_for(self, subject: SpiffeId) -> str:
        path = subject.path
        if not path.startswith(_GATEWAY_PREFIX) or "/" in path[len(_GATEWAY_PREFIX) :]:
            raise PermissionDeniedError(
                f"{subject} is not a gateway identity (spiffe://<td>/isthmus/gateway/<cluster>)",
                reason="not-a-gateway",
            )
        cluster = path[len(_GATEWAY_PREFIX) :]
        record = await self._store.get_cluster(cluster)
        if record is None or record.trust_domain != subject.trust_domain.name:
            raise PermissionDeniedError(
                f"{subject}: no joined cluster {cluster!r} in trust domain {subject.trust_domain}",
                reason="unknown-cluster",
            )
        return cluster


def require_own(caller: str, cluster: str, what: str) -> None:
    """A cluster may write only its own data: 403 naming both clusters otherwise."""
    if caller != cluster:
        raise PermissionDeniedError(
            f"cluster {caller!r} may not write {what} of cluster {cluster!r}",
            reason="not-your-cluster",
        )
