"""A gateway never takes a foreign (self-fetched) trust domain's bundle from the federation."""

from __future__ import annotations

from federation.client.bundles import reconcile_bundles
from federation.trust import BundleSet
from tests.unit.federation.test_client_bundles import Domain


def test_federation_cannot_add_or_replace_a_self_fetched_foreign_domain() -> None:
    spire, peer = Domain("spire.example.test"), Domain("peer.test")
    fetched = spire.bundle(3)
    forged = Domain("spire.example.test").bundle(9)  # the federation's attacker CA and key
    served = {"spire.example.test": forged.to_json(), "peer.test": peer.bundle(1).to_json()}
    for current in (BundleSet([]), BundleSet([fetched])):
        decision = reconcile_bundles(
            current,
            served,
            {},
            own_trust_domain="me.test",
            self_fetched=frozenset({"spire.example.test"}),
        )
        assert decision.ok and decision.changed == ("peer.test",)
        assert decision.accepted.get(spire.td) == current.get(spire.td)
    unguarded = reconcile_bundles(BundleSet([]), served, {}, own_trust_domain="me.test")
    assert unguarded.accepted.get(spire.td) == forged  # what the guard prevents
