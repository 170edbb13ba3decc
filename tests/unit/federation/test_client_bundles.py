"""The gateway decides which bundles to trust: the federation cannot forge a known domain."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric import ec

from federation.client.bundles import reconcile_bundles
from federation.trust import BundleSet, CertificateAuthority, TrustBundle, TrustDomain
from federation.trust.signed_bundle import sign_bundle_update

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Domain:
    def __init__(self, name: str) -> None:
        self.td = TrustDomain(name)
        self.ca = CertificateAuthority.create(self.td, now=NOW)
        self.key = ec.generate_private_key(ec.SECP256R1())

    def bundle(self, sequence: int, *extra: ec.EllipticCurvePrivateKey) -> TrustBundle:
        keys = {"k1": self.key.public_key()}
        keys.update({f"k{i + 2}": k.public_key() for i, k in enumerate(extra)})
        return TrustBundle(self.td, (self.ca.root,), keys, sequence)


def signed(bundle: TrustBundle, key: ec.EllipticCurvePrivateKey, kid: str = "k1") -> str:
    return sign_bundle_update(bundle, key, kid).decode()


def test_first_sight_is_accepted_and_own_domain_is_never_taken() -> None:
    peer, me = Domain("peer.test"), Domain("me.test")
    current = BundleSet([me.bundle(1)])
    forged_me = Domain("me.test").bundle(9)
    decision = reconcile_bundles(
        current,
        {"peer.test": peer.bundle(1).to_json(), "me.test": forged_me.to_json()},
        {},
        own_trust_domain="me.test",
    )
    assert decision.ok and decision.changed == ("peer.test",)
    assert decision.accepted[me.td] == me.bundle(1)


def test_properly_signed_update_is_accepted() -> None:
    peer = Domain("peer.test")
    new = peer.bundle(2, ec.generate_private_key(ec.SECP256R1()))
    decision = reconcile_bundles(
        BundleSet([peer.bundle(1)]),
        {"peer.test": new.to_json()},
        {"peer.test": signed(new, peer.key)},
        own_trust_domain="me.test",
    )
    assert decision.ok and decision.accepted[peer.td].sequence == 2


def test_update_signed_by_an_unknown_key_is_rejected() -> None:
    peer = Domain("peer.test")
    attacker = ec.generate_private_key(ec.SECP256R1())
    forged = peer.bundle(2, attacker)
    decision = reconcile_bundles(
        BundleSet([peer.bundle(1)]),
        {"peer.test": forged.to_json()},
        {"peer.test": signed(forged, attacker)},
        own_trust_domain="me.test",
    )
    assert not decision.ok
    assert decision.rejected[0][0] == "peer.test"
    assert "signature" in decision.rejected[0][1]
    assert decision.accepted[peer.td].sequence == 1


def test_lower_sequence_and_unsigned_changes_are_rejected() -> None:
    peer = Domain("peer.test")
    current = BundleSet([peer.bundle(5)])
    older = peer.bundle(4, ec.generate_private_key(ec.SECP256R1()))
    stale = reconcile_bundles(
        current,
        {"peer.test": older.to_json()},
        {"peer.test": signed(older, peer.key)},
        own_trust_domain="me.test",
    )
    assert not stale.ok and stale.accepted[peer.td].sequence == 5
    unsigned = reconcile_bundles(
        current, {"peer.test": peer.bundle(6).to_json()}, {}, own_trust_domain="me.test"
    )
    assert not unsigned.ok and "no valid signed update" in unsigned.rejected[0][1]


def test_update_for_another_trust_domain_is_rejected() -> None:
    peer, other = Domain("peer.test"), Domain("other.test")
    swapped = other.bundle(2)
    decision = reconcile_bundles(
        BundleSet([peer.bundle(1), other.bundle(1)]),
        {"peer.test": peer.bundle(2).to_json()},
        {"peer.test": signed(swapped, other.key)},
        own_trust_domain="me.test",
    )
    assert not decision.ok and decision.accepted[peer.td].sequence == 1


def test_replayed_snapshot_with_an_applied_update_is_fine() -> None:
    peer = Domain("peer.test")
    new = peer.bundle(2)
    decision = reconcile_bundles(
        BundleSet([new]),
        {"peer.test": new.to_json()},
        {"peer.test": signed(new, peer.key)},
        own_trust_domain="me.test",
    )
    assert decision.ok and decision.changed == ()
