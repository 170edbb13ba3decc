"""Which trust bundles a gateway accepts from a snapshot: the federation cannot forge.

Pure. For each trust domain the gateway already trusts, a change is accepted only through a
signed update (:func:`federation.trust.signed_bundle.accept_bundle_update`): signed by a key of
the bundle the gateway holds now, with a strictly higher sequence. A trust domain seen for the
first time is accepted as served (it came from the federation pinned at join time; it can only
vouch for *new* identities, never for a trust domain the gateway already knows). The gateway's
own trust domain is never taken from the federation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from federation.trust import (
    BundleError,
    BundleSet,
    BundleUpdateError,
    TrustBundle,
    TrustDomain,
    parse_bundle,
)
from federation.trust.errors import SpiffeIdError
from federation.trust.signed_bundle import accept_bundle_update


@dataclass(frozen=True)
class BundleDecision:
    """Result of :func:`reconcile_bundles`: the bundles to use and what was refused (by td)."""

    accepted: BundleSet
    changed: tuple[str, ...] = ()
    rejected: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        return not self.rejected


def _apply_update(current: TrustBundle, update: str | None) -> TrustBundle:
    """``current`` advanced by ``update`` when it is newer; an update already applied (same
    bundle) is fine. Raises :class:`BundleUpdateError` otherwise."""
    if update is None:
        return current
    try:
        return accept_bundle_update(current, update)
    except BundleUpdateError as err:
        if err.reason != "stale-sequence":
            raise
        # A stale update is fine only if it is exactly what we already hold (replayed snapshot).
        return current


def _one(
    td: TrustDomain, current: TrustBundle | None, served: str, update: str | None
) -> TrustBundle:
    offered = parse_bundle(td, served)
    if current is None or offered == current:
        return offered  # first sight, or nothing new (then the update was applied before)
    accepted = _apply_update(current, update)
    if offered != accepted:
        raise BundleUpdateError(
            "unsigned-change",
            f"the federation serves a bundle of {td} (sequence {offered.sequence}) that no valid "
            f"signed update vouches for; keeping sequence {accepted.sequence}",
        )
    return accepted


def reconcile_bundles(
    current: BundleSet,
    served: Mapping[str, str],
    updates: Mapping[str, str],
    *,
    own_trust_domain: str,
    self_fetched: frozenset[str] = frozenset(),
) -> BundleDecision:
    """Decide the bundle set after a snapshot. Trust domains absent from ``served`` are kept.

    ``self_fetched`` names foreign trust domains (SPIRE bundle endpoints) the gateway fetches
    itself over Web-PKI TLS: whatever the federation serves for them is ignored, so it can
    neither add nor replace them (no signed-update chain exists for those)."""
    result = dict(current.items())
    changed: list[str] = []
    rejected: list[tuple[str, str]] = []
    for name in sorted(served):
        if name == own_trust_domain or name in self_fetched:
            continue
        try:
            td = TrustDomain.parse(name)
            before = current.get(td)
            after = _one(td, before, served[name], updates.get(name))
        except (BundleError, BundleUpdateError, SpiffeIdError) as err:
            rejected.append((name, str(err)))
            continue
        if after != before:
            result[td] = after
            changed.append(name)
    return BundleDecision(BundleSet(result.values()), tuple(changed), tuple(rejected))
