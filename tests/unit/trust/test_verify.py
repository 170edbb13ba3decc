"""The verification matrix: each case a real certificate, each asserting the reason a peer is
rejected (or the ID it is admitted as)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest
from cryptography.x509 import Certificate
from cryptography.x509.oid import ExtendedKeyUsageOID

from federation.trust import (
    BundleSet,
    SpiffeId,
    SvidVerificationError,
    TrustBundle,
    verify_x509_svid,
)
from tests.helpers.pki import TestCa, bundle_set, issue_svid, make_ca, utcnow

ID_A = "spiffe://a.test/ns/web/sa/frontend"
ID_B = "spiffe://b.test/isthmus/gateway/b1"


@pytest.fixture(scope="module")
def ca_a() -> TestCa:
    return make_ca("a.test")


@pytest.fixture(scope="module")
def ca_b() -> TestCa:
    return make_ca("b.test")


@pytest.fixture(scope="module")
def bundles(ca_a: TestCa, ca_b: TestCa) -> BundleSet:
    return bundle_set(ca_a, ca_b)


def _reason(chain: Sequence[Certificate], bundles: BundleSet, now: datetime | None = None) -> str:
    with pytest.raises(SvidVerificationError) as info:
        verify_x509_svid(chain, bundles, now or utcnow())
    return info.value.reason


def test_valid_leaf_returns_its_id(ca_a: TestCa, bundles: BundleSet) -> None:
    svid = issue_svid(ca_a, ID_A)
    assert verify_x509_svid(svid.chain, bundles, utcnow()) == SpiffeId.parse(ID_A)


def test_valid_via_intermediate(bundles: BundleSet) -> None:
    mid_ca = make_ca("c.test", intermediate=True)
    svid = issue_svid(mid_ca, "spiffe://c.test/x")
    assert len(svid.chain) == 2
    got = verify_x509_svid(svid.chain, bundles.with_bundle(mid_ca.bundle()), utcnow())
    assert str(got) == "spiffe://c.test/x"


def test_leaf_with_only_server_auth_eku_is_accepted_by_the_client_verifier(
    ca_a: TestCa, bundles: BundleSet
) -> None:
    svid = issue_svid(ca_a, ID_A, ekus=[ExtendedKeyUsageOID.SERVER_AUTH])
    assert str(verify_x509_svid(svid.chain, bundles, utcnow())) == ID_A


def test_leaf_with_unrelated_eku_is_rejected(ca_a: TestCa, bundles: BundleSet) -> None:
    svid = issue_svid(ca_a, ID_A, ekus=[ExtendedKeyUsageOID.CODE_SIGNING])
    assert _reason(svid.chain, bundles) == "chain-invalid"


def test_expired(ca_a: TestCa, bundles: BundleSet) -> None:
    now = utcnow()
    svid = issue_svid(
        ca_a, ID_A, not_before=now - timedelta(hours=2), not_after=now - timedelta(seconds=1)
    )
    with pytest.raises(SvidVerificationError, match="leaf expired at") as info:
        verify_x509_svid(svid.chain, bundles, now)
    assert info.value.reason == "expired"


def test_not_yet_valid(ca_a: TestCa, bundles: BundleSet) -> None:
    now = utcnow()
    svid = issue_svid(ca_a, ID_A, not_before=now + timedelta(minutes=1))
    assert _reason(svid.chain, bundles, now) == "not-yet-valid"


def test_expired_intermediate_is_named(bundles: BundleSet) -> None:
    now = utcnow()
    mid_ca = make_ca("c.test", intermediate=True, not_after=now + timedelta(minutes=30))
    svid = issue_svid(mid_ca, "spiffe://c.test/x")
    with pytest.raises(SvidVerificationError, match=r"chain\[1\]") as info:
        verify_x509_svid(
            svid.chain, bundles.with_bundle(mid_ca.bundle()), now + timedelta(minutes=45)
        )
    assert info.value.reason == "expired"


def test_bundle_of_the_right_domain_but_another_ca(ca_a: TestCa, ca_b: TestCa) -> None:
    impostor = make_ca("a.test")  # same trust domain name, different keys
    svid = issue_svid(impostor, ID_A)
    assert _reason(svid.chain, bundle_set(ca_a, ca_b)) == "chain-invalid"


def test_td_b_id_signed_by_td_a_ca_is_rejected(ca_a: TestCa, bundles: BundleSet) -> None:
    svid = issue_svid(ca_a, ID_B)  # a.test's CA minting a b.test identity
    with pytest.raises(SvidVerificationError, match="bundle of b.test") as info:
        verify_x509_svid(svid.chain, bundles, utcnow())
    assert info.value.reason == "chain-invalid"


def test_two_uri_sans(ca_a: TestCa, bundles: BundleSet) -> None:
    svid = issue_svid(ca_a, ID_A, uris=[ID_A, "spiffe://a.test/other"])
    assert _reason(svid.chain, bundles) == "multiple-uri-sans"


def test_no_uri_san(ca_a: TestCa, bundles: BundleSet) -> None:
    svid = issue_svid(ca_a, ID_A, uris=[])
    assert _reason(svid.chain, bundles) == "no-uri-san"


def test_non_spiffe_uri(ca_a: TestCa, bundles: BundleSet) -> None:
    svid = issue_svid(ca_a, ID_A, uris=["https://a.test/ns/web"])
    assert _reason(svid.chain, bundles) == "not-spiffe"


def test_malformed_spiffe_uri(ca_a: TestCa, bundles: BundleSet) -> None:
    svid = issue_svid(ca_a, ID_A, uris=["spiffe://A.TEST/x"])
    assert _reason(svid.chain, bundles) == "malformed-spiffe-id"


def test_leaf_ca_true(ca_a: TestCa, bundles: BundleSet) -> None:
    svid = issue_svid(ca_a, ID_A, is_ca=True)
    assert _reason(svid.chain, bundles) == "leaf-is-ca"


def test_leaf_with_key_cert_sign(ca_a: TestCa, bundles: BundleSet) -> None:
    svid = issue_svid(ca_a, ID_A, key_cert_sign=True)
    assert _reason(svid.chain, bundles) == "leaf-can-sign"


def test_missing_intermediate(bundles: BundleSet) -> None:
    mid_ca = make_ca("c.test", intermediate=True)
    svid = issue_svid(mid_ca, "spiffe://c.test/x", with_intermediates=False)
    assert _reason(svid.chain, bundles.with_bundle(mid_ca.bundle())) == "chain-invalid"


def test_unknown_trust_domain(ca_a: TestCa, bundles: BundleSet) -> None:
    stranger = make_ca("z.test")
    svid = issue_svid(stranger, "spiffe://z.test/x")
    with pytest.raises(
        SvidVerificationError, match="no trust bundle for trust domain z.test"
    ) as info:
        verify_x509_svid(svid.chain, bundles, utcnow())
    assert info.value.reason == "unknown-trust-domain"


def test_self_signed_leaf(ca_a: TestCa, bundles: BundleSet) -> None:
    svid = issue_svid(ca_a, ID_A, self_signed=True)
    assert _reason(svid.chain, bundles) == "chain-invalid"


def test_bundle_rotated_away(ca_a: TestCa, ca_b: TestCa) -> None:
    svid = issue_svid(ca_a, ID_A)
    successor = make_ca("a.test")
    before = bundle_set(ca_a, ca_b)
    both = before.with_bundle(TrustBundle(ca_a.trust_domain, (ca_a.root, successor.root), {}, 2))
    after = before.with_bundle(successor.bundle(sequence=3))
    assert str(verify_x509_svid(svid.chain, both, utcnow())) == ID_A
    assert _reason(svid.chain, after) == "chain-invalid"


def test_empty_chain(bundles: BundleSet) -> None:
    assert _reason([], bundles) == "empty-chain"


def test_empty_bundle_for_the_domain(ca_a: TestCa) -> None:
    svid = issue_svid(ca_a, ID_A)
    empty = BundleSet([TrustBundle(ca_a.trust_domain)])
    assert _reason(svid.chain, empty) == "no-authorities"


def test_plain_mapping_of_bundles_is_accepted(ca_a: TestCa) -> None:
    svid = issue_svid(ca_a, ID_A)
    assert str(verify_x509_svid(svid.chain, {ca_a.trust_domain: ca_a.bundle()}, utcnow())) == ID_A


def test_chain_that_also_carries_the_root_is_accepted(bundles: BundleSet) -> None:
    mid_ca = make_ca("c.test", intermediate=True)
    svid = issue_svid(mid_ca, "spiffe://c.test/x")
    chain = [*svid.chain, mid_ca.root]
    got = verify_x509_svid(chain, bundles.with_bundle(mid_ca.bundle()), utcnow())
    assert str(got) == "spiffe://c.test/x"
