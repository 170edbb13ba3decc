"""SPIFFE bundle codec: round trips, SPIRE-shaped input, and a precise error per malformed form."""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.trust import (
    BundleError,
    BundleSet,
    TrustBundle,
    TrustDomain,
    load_bundle_file,
    parse_bundle,
)
from tests.helpers.pki import issue_svid, make_ca

TD = TrustDomain("a.test")
_CAS = [make_ca(TD), make_ca(TD, intermediate=True), make_ca(TD, uri_san=False)]
_JWT_KEYS = {f"k{i}": ec.generate_private_key(ec.SECP256R1()).public_key() for i in range(3)}


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from(_CAS), unique=True, max_size=3),
    st.lists(st.sampled_from(sorted(_JWT_KEYS)), unique=True, max_size=3),
    st.integers(min_value=0, max_value=2**53),
    st.one_of(st.none(), st.integers(min_value=0, max_value=86400)),
)
def test_round_trip(cas: list[Any], kids: list[str], sequence: int, hint: int | None) -> None:
    bundle = TrustBundle(
        TD, tuple(c.root for c in cas), {k: _JWT_KEYS[k] for k in kids}, sequence, hint
    )
    text = bundle.to_json()
    again = parse_bundle(TD, text)
    assert again == bundle
    assert again.to_json() == text
    assert parse_bundle(TD, json.loads(text)) == bundle


def test_trust_domain_is_derived_from_the_ca_uri_san() -> None:
    doc = _CAS[0].bundle(sequence=7, refresh_hint_s=60).to_dict()
    bundle = parse_bundle(None, json.dumps(doc).encode())
    assert (bundle.trust_domain, bundle.sequence, bundle.refresh_hint_s) == (TD, 7, 60)


def test_spire_shaped_bundle_parses(tmp_path: Any) -> None:
    # SPIRE writes exactly these members; there is no trust-domain member.
    cert = _CAS[0].root
    doc = _CAS[0].bundle().to_dict()
    doc["keys"][0] = {k: doc["keys"][0][k] for k in ("use", "kty", "crv", "x", "y", "x5c")}
    (tmp_path / "b.json").write_text(json.dumps(doc))
    bundle = load_bundle_file(tmp_path / "b.json")
    assert bundle.x509_authorities == (cert,) and bundle.trust_domain == TD


def _good() -> dict[str, Any]:
    bundle = TrustBundle(TD, (_CAS[0].root,), {"k0": _JWT_KEYS["k0"]}, 3, 300)
    return bundle.to_dict()


def _with(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(_good())
    *parents, last = path.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is _DELETE:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return doc


def _swapped_point() -> dict[str, Any]:
    doc = _good()  # the CA key's JWK x/y replaced by another (valid) key's
    doc["keys"][0]["x"], doc["keys"][0]["y"] = doc["keys"][1]["x"], doc["keys"][1]["y"]
    return doc


_DELETE = object()
_LEAF = issue_svid(_CAS[0], "spiffe://a.test/x").leaf
_LEAF_DER = base64.b64encode(_LEAF.public_bytes(serialization.Encoding.DER)).decode()
_OTHER_TD = make_ca("b.test").bundle().to_dict()["keys"][0]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{not json", "bundle is not valid JSON"),
        (b"\xff\xfe", "bundle is not valid JSON"),
        ("[]", "bundle must be a JSON object, got list"),
        ({"spiffe_sequence": 1}, "bundle has no 'keys' array"),
        (_with("keys", {"use": "x509-svid"}), "bundle has no 'keys' array"),
        (_with("keys.0", "x"), r"keys\[0\]: expected a JSON object, got str"),
        (_with("keys.0.use", _DELETE), r"keys\[0\]: missing 'use'"),
        (_with("keys.0.use", "x509"), r"keys\[0\]: unsupported use 'x509'"),
        (_with("keys.0.x5c", _DELETE), r"keys\[0\]: x5c must hold exactly one certificate, got no"),
        (_with("keys.0.x5c", ["AA==", "AA=="]), r"exactly one certificate, got 2"),
        (_with("keys.0.x5c.0", "not base64!"), r"keys\[0\]\.x5c\[0\]: bad base64"),
        (_with("keys.0.x5c.0", "AAAA"), r"keys\[0\]\.x5c\[0\]: not a DER X\.509 certificate"),
        (_with("keys.0.x5c.0", _LEAF_DER), r"keys\[0\]: certificate 'CN=svid' is not a CA"),
        (_with("keys.0.kty", _DELETE), r"keys\[0\]: missing 'kty'"),
        (_with("keys.0.kty", "oct"), r"keys\[0\]: unsupported kty 'oct'"),
        (_swapped_point(), r"keys\[0\]: JWK key parameters do not match the x5c certificate's key"),
        (_with("keys.1.kid", _DELETE), r"keys\[1\]: jwt-svid key without a 'kid'"),
        (_with("keys.1.kid", ""), r"keys\[1\]: jwt-svid key without a 'kid'"),
        (_with("keys.1.crv", "P-521"), r"keys\[1\]: unsupported crv 'P-521'"),
        (_with("keys.1.x", 17), r"keys\[1\]\.x: expected a base64url string, got int"),
        (_with("keys.1.y", "AAAA"), r"keys\[1\]: x/y is not a point on P-256"),
        (_with("spiffe_sequence", -1), "spiffe_sequence: must not be negative, got -1"),
        (_with("spiffe_sequence", "3"), "spiffe_sequence: expected an integer, got str"),
        (_with("spiffe_sequence", True), "spiffe_sequence: expected an integer, got bool"),
        (_with("spiffe_refresh_hint", -5), "spiffe_refresh_hint: must not be negative"),
    ],
)
def test_malformed_bundles_are_rejected_precisely(data: Any, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        parse_bundle(TD, data)


def test_duplicate_kid_is_rejected() -> None:
    doc = _good()
    doc["keys"].append(dict(doc["keys"][1]))
    with pytest.raises(BundleError, match=r"keys\[2\]: duplicate kid 'k0'"):
        parse_bundle(TD, doc)


def test_bundle_of_one_domain_never_takes_a_ca_of_another() -> None:
    doc = _good()
    doc["keys"].append(_OTHER_TD)
    with pytest.raises(BundleError, match="holds a CA of trust domain b.test"):
        parse_bundle(TD, doc)
    with pytest.raises(BundleError, match=r"mixes trust domains \['a.test', 'b.test'\]"):
        parse_bundle(None, doc)
    with pytest.raises(BundleError, match="cannot hold a CA of trust domain b.test"):
        TrustBundle(TD, (make_ca("b.test").root,))


def test_trust_domain_must_be_given_when_no_ca_names_it() -> None:
    doc = TrustBundle(TD, (_CAS[2].root,)).to_dict()
    with pytest.raises(BundleError, match="cannot tell the bundle's trust domain"):
        parse_bundle(None, doc)
    assert parse_bundle(TD, doc).trust_domain == TD


def test_bundle_set_keeps_one_bundle_per_domain() -> None:
    a, b = _CAS[0].bundle(), make_ca("b.test").bundle()
    bundles = BundleSet([a, b])
    assert set(bundles) == {TD, TrustDomain("b.test")}
    with pytest.raises(BundleError, match="two bundles for trust domain a.test"):
        BundleSet([a, b, _CAS[1].bundle()])
    replaced = bundles.with_bundle(_CAS[1].bundle(sequence=2))
    assert replaced[TD].sequence == 2 and len(replaced) == 2
    assert set(bundles.without(TD)) == {TrustDomain("b.test")}
    assert len(bundles.x509_roots()) == 2


def test_load_bundle_file_names_the_file(tmp_path: Any) -> None:
    path = tmp_path / "bundle.json"
    path.write_text("[]")
    with pytest.raises(BundleError, match=r"bundle\.json: bundle must be a JSON object"):
        load_bundle_file(path)
    with pytest.raises(BundleError, match="missing.json: cannot read bundle"):
        load_bundle_file(tmp_path / "missing.json")


def test_rsa_authorities_round_trip() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rsa root")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier("spiffe://a.test")]), False
        )
        .sign(key, hashes.SHA256())
    )
    bundle = TrustBundle(TD, (cert,), {"r1": key.public_key()}, 2)
    doc = bundle.to_dict()
    assert doc["keys"][0]["kty"] == "RSA" and doc["keys"][0]["e"] == "AQAB"
    assert parse_bundle(None, bundle.to_json()) == bundle
