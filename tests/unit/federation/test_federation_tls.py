"""The federation's TLS CA: created once, pinned by fingerprint, private keys 0600."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

import pytest

from federation.service import FederationTlsError, ensure_federation_tls, pinned_client_context


def test_ca_is_created_once_and_keys_are_private(tmp_path: Path) -> None:
    first = ensure_federation_tls(tmp_path / "tls")
    second = ensure_federation_tls(tmp_path / "tls")
    assert first.fingerprint == second.fingerprint
    assert first.fingerprint.startswith("sha256:") and len(first.fingerprint) == 7 + 64
    for name in ("ca.key", "server.key"):
        assert stat.S_IMODE((tmp_path / "tls" / name).stat().st_mode) == 0o600


def test_pinned_context_trusts_only_the_pinned_ca(tmp_path: Path) -> None:
    tls = ensure_federation_tls(tmp_path / "tls")
    context = pinned_client_context(tls.ca_path.read_bytes(), tls.fingerprint)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert len(context.get_ca_certs()) == 1


def test_wrong_fingerprint_is_refused(tmp_path: Path) -> None:
    tls = ensure_federation_tls(tmp_path / "tls")
    other = ensure_federation_tls(tmp_path / "other")
    with pytest.raises(FederationTlsError, match="pins") as info:
        pinned_client_context(tls.ca_path.read_bytes(), other.fingerprint)
    assert info.value.reason == "fingerprint-mismatch"
