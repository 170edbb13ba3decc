"""Joining a federation with a single-use token, pinning its TLS CA by fingerprint.

The token carries the federation URL and the SHA-256 fingerprint of its TLS CA. The client
fetches the CA certificate from ``/v1/federation/ca.pem`` over a TLS connection it does *not*
yet trust, checks the fingerprint, and from then on talks only through a context trusting
exactly that CA. A mismatch (wrong URL, interception) stops the join before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from federation.client.api import refusal
from federation.client.errors import FederationUnavailable
from federation.client.state import JoinRecord
from federation.model.api import Cost, JoinRequest, JoinResponse
from federation.model.routing import Locality
from federation.service.join import JoinToken
from federation.service.tls import pinned_client_context
from federation.trust import TrustBundle

_TIMEOUT = httpx.Timeout(10.0)


async def fetch_pinned_ca(url: str, fingerprint: str) -> bytes:
    """The federation's CA certificate (PEM), after checking it matches ``fingerprint``.

    Raises ``FederationTlsError`` on mismatch, :class:`FederationUnavailable` if unreachable.
    """
    # Unverified on purpose: the fingerprint check below is what authenticates the CA.
    async with httpx.AsyncClient(base_url=url, verify=False, timeout=_TIMEOUT) as client:  # noqa: S501
        try:
            response = await client.get("/v1/federation/ca.pem")
        except httpx.TransportError as err:
            raise FederationUnavailable(f"federation {url} unreachable: {err!r}") from err
    if response.status_code != 200:
        raise refusal(response)
    pinned_client_context(response.content, fingerprint)  # raises on mismatch
    return response.content


async def join_federation(
    token_text: str,
    *,
    trust_bundle: TrustBundle,
    gateway_addresses: tuple[str, ...],
    locality: Locality,
    capacity: int = 0,
    cost: Cost | None = None,
    labels: Mapping[str, str] | None = None,
) -> JoinRecord:
    """Register this cluster; return the record to persist (``ClientStateDir.save_join``).

    ``trust_bundle`` must hold the ``jwt-svid`` key the gateway will sign JWT-SVIDs with.
    Raises ``JoinTokenError`` (malformed token), ``FederationTlsError`` (CA mismatch),
    :class:`FederationRefused` (reused/expired/tampered token, bad bundle, ...) or
    :class:`FederationUnavailable`.
    """
    token = JoinToken.decode(token_text)
    ca_pem = await fetch_pinned_ca(token.federation_url, token.ca_sha256)
    request = JoinRequest(
        token=token_text.strip(),
        trust_domain=trust_bundle.trust_domain.name,
        trust_bundle=trust_bundle.to_json(),
        gateway_addresses=gateway_addresses,
        locality=locality,
        capacity=capacity,
        cost=cost or Cost(),
        labels=dict(labels or {}),
    )
    context = pinned_client_context(ca_pem, token.ca_sha256)
    async with httpx.AsyncClient(
        base_url=token.federation_url, verify=context, http2=True, timeout=_TIMEOUT
    ) as client:
        try:
            response = await client.post(
                "/v1/join",
                content=request.model_dump_json(),
                headers={"content-type": "application/json"},
            )
        except httpx.TransportError as err:
            raise FederationUnavailable(
                f"federation {token.federation_url} unreachable: {err!r}"
            ) from err
    if response.status_code != 201:
        raise refusal(response)
    joined = JoinResponse.model_validate_json(response.content)
    return JoinRecord(
        federation_url=token.federation_url,
        ca_pem=ca_pem.decode(),
        ca_fingerprint=token.ca_sha256,
        cluster=joined.cluster,
        trust_domain=joined.trust_domain,
        audience=joined.audience,
        max_token_ttl_s=joined.max_token_ttl_s,
        report_interval_s=joined.report_interval_s,
        bundles=joined.bundles,
        federation_urls=joined.federation_urls,
    )
