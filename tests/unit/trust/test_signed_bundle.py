"""Signed bundle updates: only a key already trusted for the domain can move it forward."""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from federation.trust import (
    BundleUpdateError,
    TrustBundle,
    TrustDomain,
    accept_bundle_update,
    sign_bundle_update,
)
from tests.helpers.pki import make_ca

TD = TrustDomain("a.test")
K1, K2 = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
CA1, CA2 = make_ca(TD), make_ca(TD)
CURRENT = TrustBundle(TD, (CA1.root,), {"k1": K1.public_key()}, sequence=5)


def _reason(current: TrustBundle, update: bytes) -> str:
    with pytest.raises(BundleUpdateError) as info:
        accept_bundle_update(current, update)
    return info.value.reason


def test_rotation_through_two_signed_updates() -> None:
    step1 = TrustBundle(TD, (CA1.root, CA2.root), {"k1": K1.public_key(), "k2": K2.public_key()}, 6)
    accepted = accept_bundle_update(CURRENT, sign_bundle_update(step1, K1, "k1"))
    assert accepted == step1
    step2 = TrustBundle(TD, (CA2.root,), {"k2": K2.public_key()}, 7)
    accepted2 = accept_bundle_update(accepted, sign_bundle_update(step2, K2, "k2"))
    assert accepted2.x509_authorities == (CA2.root,)
    # k1 was rotated out: it can no longer speak for a.test
    step3 = replace(step2, sequence=8)
    assert _reason(accepted2, sign_bundle_update(step3, K1, "k1")) == "unknown-signing-key"


def test_sequence_must_strictly_increase() -> None:
    same = replace(CURRENT, sequence=5)
    older = replace(CURRENT, sequence=4)
    assert _reason(CURRENT, sign_bundle_update(same, K1, "k1")) == "stale-sequence"
    assert _reason(CURRENT, sign_bundle_update(older, K1, "k1")) == "stale-sequence"


def test_key_not_in_the_current_bundle_is_refused() -> None:
    attacker = ec.generate_private_key(ec.SECP256R1())
    update = TrustBundle(TD, (CA2.root,), {"k1": attacker.public_key()}, 99)
    assert _reason(CURRENT, sign_bundle_update(update, attacker, "k1")) == "bad-signature"
    assert _reason(CURRENT, sign_bundle_update(update, attacker, "evil")) == "unknown-signing-key"


def test_other_trust_domain_is_refused() -> None:
    other = TrustBundle(TrustDomain("b.test"), (make_ca("b.test").root,), {}, 9)
    with pytest.raises(BundleUpdateError, match="for trust domain 'b.test', not a.test") as info:
        accept_bundle_update(CURRENT, sign_bundle_update(other, K1, "k1"))
    assert info.value.reason == "other-trust-domain"


def test_relay_tampering_is_detected() -> None:
    update = sign_bundle_update(replace(CURRENT, sequence=6), K1, "k1").decode()
    head, _payload, sig = update.split(".")
    forged = sign_bundle_update(TrustBundle(TD, (CA2.root,), {}, 6), K2, "k1").decode()
    assert _reason(CURRENT, f"{head}.{forged.split('.')[1]}.{sig}".encode()) == "bad-signature"
    assert _reason(CURRENT, b"not a jws") == "malformed"
