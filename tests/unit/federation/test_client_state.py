"""Client-side pure pieces: reconnect backoff, and state files that survive restarts."""

from __future__ import annotations

import random
import stat
from pathlib import Path

import pytest

from federation.client import ClientStateDir, ClientStateError, JoinRecord, backoff_delay


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, rng, base_s=0.5, cap_s=30.0) for n in range(12)]
    for attempt, delay in enumerate(delays):
        ceiling = min(30.0, 0.5 * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 30.0
    other = [backoff_delay(n, random.Random(2)) for n in range(12)]
    assert other != delays  # jitter: two gateways do not retry in lockstep


def test_backoff_is_reproducible_from_the_injected_rng() -> None:
    assert [backoff_delay(n, random.Random(5)) for n in range(5)] == [
        backoff_delay(n, random.Random(5)) for n in range(5)
    ]


def record() -> JoinRecord:
    return JoinRecord(
        federation_url="https://127.0.0.1:8443",
        ca_pem="-----BEGIN CERTIFICATE-----\n",
        ca_fingerprint="sha256:" + "a" * 64,
        cluster="aws",
        trust_domain="aws.test",
        audience="isthmus-federation",
        max_token_ttl_s=300,
        report_interval_s=1.0,
    )


def test_join_record_round_trips_and_files_are_private(tmp_path: Path) -> None:
    state = ClientStateDir(tmp_path / "fed")
    assert state.load_join() is None
    state.save_join(record())
    assert state.load_join() == record()
    key, kid = state.load_or_create_jwt_key()
    again, kid_again = state.load_or_create_jwt_key()
    assert kid == kid_again and len(kid) == 16
    assert key.public_key() == again.public_key()
    for path in (state.join_path, state.jwt_key_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_corrupt_files_are_named(tmp_path: Path) -> None:
    state = ClientStateDir(tmp_path)
    state.snapshot_path.write_text("{not json")
    with pytest.raises(ClientStateError, match="last-snapshot.json"):
        state.load_snapshot()
    state.join_path.write_text('{"cluster": "x"}')
    with pytest.raises(ClientStateError, match="federation.json"):
        state.load_join()


def test_registration_bundle_adds_the_gateway_jwt_key(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from federation.client import registration_bundle
    from federation.trust import CertificateAuthority, TrustDomain

    ca = CertificateAuthority.create(TrustDomain("aws.test"), now=datetime.now(UTC))
    key, kid = ClientStateDir(tmp_path).load_or_create_jwt_key()
    bundle = registration_bundle(ca.bundle(sequence=3), key, kid)
    assert bundle.x509_authorities == (ca.root,)
    assert bundle.jwt_authorities[kid] == key.public_key()
    assert bundle.sequence == 3
