"""Foreign (e.g. SPIRE) trust domains a federated gateway fetches itself.

SPIRE does not sign bundle updates with the federation's JWS scheme, so a bundle the federation
relays for a foreign domain would rest on the federation's word alone. A gateway that should
trust such a domain therefore names it and its ``https_web`` bundle endpoint in its own config
(``federation.foreign_trust_domains``) and fetches it over Web-PKI TLS 1.3 with
:class:`federation.service.ForeignBundles` (rollback refused, refetched per the bundle's
``spiffe_refresh_hint``, last good bundle kept while the endpoint fails).

:meth:`ForeignTrust.overlay` is applied to every bundle set the gateway installs: it removes
whatever else claims those trust domains (a snapshot, the join record, a persisted snapshot)
and puts the self-fetched bundle in, so a compromised federation can neither add nor replace
one. The federation link is also told to ignore them (``self_fetched_trust_domains``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

import trio

from federation.service.foreign import ForeignBundles, ForeignTrustDomain
from federation.trust import BundleSet, TrustDomain
from gateway.errors import GatewayConfigError

log = logging.getLogger(__name__)


class ForeignTrust:
    """The gateway's self-fetched foreign bundles. Borrowed by the link's apply callback;
    :meth:`run` (in the federation link's nursery) owns the fetch tasks."""

    def __init__(
        self,
        sources: Iterable[ForeignTrustDomain],
        *,
        own_trust_domain: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Raises :class:`GatewayConfigError` if a source names the gateway's own domain."""
        listed = tuple(sources)
        for source in listed:
            if source.trust_domain == own_trust_domain:
                raise GatewayConfigError(
                    "gateway.yaml",
                    [
                        f"federation.foreign_trust_domains: {own_trust_domain!r} is this "
                        "gateway's own trust domain; list only other (e.g. SPIRE) trust domains"
                    ],
                )
        self.fetcher = ForeignBundles(listed, clock=clock)
        self.names = self.fetcher.trust_domains()

    def overlay(self, bundles: BundleSet) -> BundleSet:
        """``bundles`` with every foreign domain's bundle replaced by the self-fetched one (or
        removed, if not fetched yet): nothing else may speak for these domains."""
        result = bundles
        for name in sorted(self.names):
            result = result.without(TrustDomain(name))
            fetched = self.fetcher.states[name].bundle
            if fetched is not None:
                result = result.with_bundle(fetched)
        return result

    def describe(self) -> list[dict[str, object]]:
        """Per domain: URL, sequence held, failures and last error (for the status page)."""
        return [
            {
                "trust_domain": state.trust_domain,
                "url": state.url,
                "sequence": None if state.bundle is None else state.bundle.sequence,
                "fetched_at": state.fetched_at,
                "failures": state.failures,
                "last_error": state.last_error,
            }
            for state in self.fetcher.states.values()
        ]

    async def run(self, on_change: Callable[[], None]) -> None:
        """Fetch every domain now and then per its refresh hint, until cancelled; call
        ``on_change()`` after each fetch attempt (it re-installs ``overlay(...)``). Fetch
        failures are logged and retried with backoff; they never end this task."""
        if not self.names:
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.fetcher.run)
            while True:
                changed = self.fetcher.changed
                await changed.wait()
                on_change()
