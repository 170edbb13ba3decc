"""JWT-SVIDs: mint/verify, each rejection reason, and interop with an independent JWT library."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from federation.trust import (
    BundleSet,
    JwtSvidError,
    SpiffeId,
    TrustBundle,
    TrustDomain,
    mint_jwt_svid,
    verify_jwt_svid,
)
from federation.trust.jws import sign_compact

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TD_A, TD_B = TrustDomain("a.test"), TrustDomain("b.test")
SID = SpiffeId.parse("spiffe://a.test/ns/web/sa/api")
KEY_A = ec.generate_private_key(ec.SECP256R1())
KEY_B = ec.generate_private_key(ec.SECP256R1())
BUNDLES = BundleSet(
    [
        TrustBundle(TD_A, (), {"a1": KEY_A.public_key()}),
        TrustBundle(TD_B, (), {"b1": KEY_B.public_key(), "a1": KEY_B.public_key()}),
    ]
)


def _mint(**kw: object) -> str:
    args: dict[str, object] = {
        "key": KEY_A,
        "kid": "a1",
        "spiffe_id": SID,
        "audience": ["svc"],
        "now": NOW,
        "ttl": timedelta(minutes=5),
    }
    args.update(kw)
    return mint_jwt_svid(**args)  # type: ignore[arg-type]


def _reason(token: str, audience: str = "svc", now: datetime = NOW) -> str:
    with pytest.raises(JwtSvidError) as info:
        verify_jwt_svid(token, BUNDLES, audience, now)
    return info.value.reason


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_mint_then_verify() -> None:
    token = _mint(audience=["svc", "other"])
    assert verify_jwt_svid(token, BUNDLES, "other", NOW + timedelta(minutes=4)) == SID
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"kid": "a1", "typ": "JWT", "alg": "ES256"}


def test_expired_and_audience() -> None:
    token = _mint()
    assert _reason(token, now=NOW + timedelta(minutes=5)) == "expired"
    assert _reason(token, audience="elsewhere") == "audience-mismatch"


def test_key_is_chosen_from_the_subjects_own_trust_domain() -> None:
    # a.test's key signs a b.test subject: b.test's bundle has no such key -> rejected
    forged_sub = _mint(spiffe_id=SpiffeId.parse("spiffe://b.test/x"))
    assert _reason(forged_sub) == "bad-signature"  # kid a1 exists in b's bundle with b's key
    assert _reason(_mint(spiffe_id=SpiffeId.parse("spiffe://b.test/x"), kid="zz")) == "unknown-kid"
    assert _reason(_mint(spiffe_id=SpiffeId.parse("spiffe://z.test/x"))) == "unknown-trust-domain"


def test_tampering_and_foreign_keys_are_rejected() -> None:
    token = _mint()
    head, _payload, sig = token.split(".")
    longer = _b64({"sub": str(SID), "aud": ["svc"], "exp": 2**40})
    assert _reason(f"{head}.{longer}.{sig}") == "bad-signature"
    assert _reason(_mint(key=ec.generate_private_key(ec.SECP256R1()))) == "bad-signature"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("a.b", "malformed"),
        ("!!.e30.AA", "malformed"),
        (_b64({"alg": "none", "kid": "a1"}) + "." + _b64({"sub": str(SID)}) + ".", "malformed"),
        (_b64({"alg": "HS256", "kid": "a1"}) + "." + _b64({"sub": str(SID)}) + ".AA", "malformed"),
        (
            sign_compact(
                {}, json.dumps({"sub": str(SID), "aud": "svc", "exp": 2**40}).encode(), KEY_A
            ),
            "malformed",
        ),
        (sign_compact({"kid": "a1"}, b"[1]", KEY_A), "malformed"),
        (sign_compact({"kid": "a1"}, json.dumps({"aud": "svc"}).encode(), KEY_A), "bad-sub"),
        (
            sign_compact({"kid": "a1"}, json.dumps({"sub": "spiffe://A/x"}).encode(), KEY_A),
            "bad-sub",
        ),
        (
            sign_compact(
                {"kid": "a1"}, json.dumps({"sub": str(SID), "aud": "svc"}).encode(), KEY_A
            ),
            "missing-exp",
        ),
        (
            sign_compact(
                {"kid": "a1"},
                json.dumps({"sub": str(SID), "aud": "svc", "exp": 2**40, "nbf": 2**39}).encode(),
                KEY_A,
            ),
            "not-yet-valid",
        ),
    ],
)
def test_malformed_tokens(token: str, reason: str) -> None:
    assert _reason(token) == reason


def test_interop_with_pyjwt() -> None:
    pyjwt = pytest.importorskip("jwt")
    token = _mint()
    decoded = pyjwt.decode(
        token,
        KEY_A.public_key(),
        algorithms=["ES256"],
        audience="svc",
        options={"verify_exp": False},
    )
    assert decoded["sub"] == str(SID)
    theirs = pyjwt.encode(
        {"sub": str(SID), "aud": ["svc"], "exp": int(NOW.timestamp()) + 60},
        KEY_A,
        algorithm="ES256",
        headers={"kid": "a1"},
    )
    assert verify_jwt_svid(theirs, BUNDLES, "svc", NOW) == SID
