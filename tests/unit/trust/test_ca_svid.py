"""CA and SVID issuance: the certificate profiles, lifetimes, and files on disk (keys 0600)."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from federation.trust import (
    CertificateAuthority,
    CertificateAuthorityError,
    SpiffeId,
    SvidError,
    TrustDomain,
    X509Svid,
    issue_x509_svid,
    load_bundle_file,
    verify_x509_svid,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TD = TrustDomain("a.test")
ID = SpiffeId.parse("spiffe://a.test/isthmus/gateway/c1")


def _ext(cert: x509.Certificate | None, kind: type[x509.ExtensionType]) -> Any:
    assert cert is not None
    return cert.extensions.get_extension_for_class(kind)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("intermediate", [False, True])
def test_ca_certificates_follow_the_spiffe_ca_profile(intermediate: bool) -> None:
    ca = CertificateAuthority.create(TD, now=NOW, intermediate=intermediate)
    certs = [ca.root] + ([ca.intermediate] if ca.intermediate else [])
    for cert in certs:
        bc = _ext(cert, x509.BasicConstraints)
        assert bc.critical and bc.value.ca
        ku = _ext(cert, x509.KeyUsage).value
        assert ku.key_cert_sign and ku.crl_sign
        san = _ext(cert, x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://a.test"]
        assert _ext(cert, x509.SubjectKeyIdentifier) and _ext(cert, x509.AuthorityKeyIdentifier)
    assert _ext(ca.root, x509.BasicConstraints).value.path_length == (1 if intermediate else 0)
    assert "PRIVATE" not in repr(ca) and "key" not in repr(ca).lower()


def test_svid_follows_the_x509_svid_profile() -> None:
    ca = CertificateAuthority.create(TD, now=NOW, intermediate=True)
    svid = issue_x509_svid(ca, ID, now=NOW)
    leaf = svid.leaf
    san = _ext(leaf, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [str(ID)]
    assert len(list(san)) == 1
    assert _ext(leaf, x509.BasicConstraints).value.ca is False
    ku = _ext(leaf, x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign and not ku.crl_sign
    ekus = set(_ext(leaf, x509.ExtendedKeyUsage).value)
    assert ekus == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert _ext(leaf, x509.AuthorityKeyIdentifier).value.key_identifier == (
        _ext(ca.intermediate, x509.SubjectKeyIdentifier).value.digest
    )
    assert svid.chain == (leaf, ca.intermediate)
    assert svid.not_after - NOW == timedelta(hours=1)
    assert verify_x509_svid(svid.chain, {TD: ca.bundle()}, NOW) == ID
    assert "PRIVATE" not in repr(svid)


def test_svid_never_outlives_its_ca() -> None:
    ca = CertificateAuthority.create(TD, now=NOW, ttl=timedelta(minutes=20))
    svid = issue_x509_svid(ca, ID, now=NOW, ttl=timedelta(hours=1))
    assert svid.not_after == ca.not_after == NOW + timedelta(minutes=20)
    with pytest.raises(SvidError, match="the CA expired at"):
        issue_x509_svid(ca, ID, now=NOW + timedelta(hours=1))


def test_svid_of_another_trust_domain_is_refused() -> None:
    ca = CertificateAuthority.create(TD, now=NOW)
    with pytest.raises(SvidError, match="the CA is for trust domain a.test, not b.test"):
        issue_x509_svid(ca, SpiffeId.parse("spiffe://b.test/x"), now=NOW)


@pytest.mark.parametrize("intermediate", [False, True])
def test_ca_save_load_round_trip_with_private_keys_0600(tmp_path: Path, intermediate: bool) -> None:
    ca = CertificateAuthority.create(TD, now=NOW, intermediate=intermediate)
    ca.save(tmp_path / "ca")
    assert _mode(tmp_path / "ca" / "ca.key") == 0o600
    if intermediate:
        assert _mode(tmp_path / "ca" / "root.key") == 0o600
    loaded = CertificateAuthority.load(tmp_path / "ca")
    assert (loaded.trust_domain, loaded.root, loaded.intermediate) == (TD, ca.root, ca.intermediate)
    assert load_bundle_file(tmp_path / "ca" / "bundle.json").x509_authorities == (ca.root,)
    svid = issue_x509_svid(loaded, ID, now=NOW)
    assert verify_x509_svid(svid.chain, {TD: ca.bundle()}, NOW) == ID


def test_ca_save_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    first = CertificateAuthority.create(TD, now=NOW)
    first.save(tmp_path)
    second = CertificateAuthority.create(TD, now=NOW)
    with pytest.raises(CertificateAuthorityError, match="a CA already exists .*use --force"):
        second.save(tmp_path)
    assert CertificateAuthority.load(tmp_path).root == first.root
    (tmp_path / "ca.key").chmod(0o644)  # a loosened key is tightened again by --force
    second.save(tmp_path, force=True)
    assert CertificateAuthority.load(tmp_path).root == second.root
    assert _mode(tmp_path / "ca.key") == 0o600


def test_ca_load_errors_name_the_directory(tmp_path: Path) -> None:
    with pytest.raises(CertificateAuthorityError, match="cannot read the CA .*isthmus ca init"):
        CertificateAuthority.load(tmp_path)
    CertificateAuthority.create(TD, now=NOW).save(tmp_path / "x")
    CertificateAuthority.create(TD, now=NOW).save(tmp_path / "y")
    (tmp_path / "x" / "ca.key").write_bytes((tmp_path / "y" / "ca.key").read_bytes())
    with pytest.raises(CertificateAuthorityError, match="ca.key does not belong"):
        CertificateAuthority.load(tmp_path / "x")


def test_svid_save_load_round_trip(tmp_path: Path) -> None:
    ca = CertificateAuthority.create(TD, now=NOW, intermediate=True)
    svid = issue_x509_svid(ca, ID, now=NOW)
    svid.save(tmp_path)
    assert _mode(tmp_path / "svid.key") == 0o600
    loaded = X509Svid.load(tmp_path)
    assert loaded.spiffe_id == ID and loaded.chain == svid.chain
    other = issue_x509_svid(ca, ID, now=NOW)
    with pytest.raises(SvidError, match="private key does not belong to the leaf"):
        X509Svid.from_pem(svid.chain_pem(), other.key_pem())
