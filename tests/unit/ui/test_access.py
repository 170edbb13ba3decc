"""Dashboard sessions: issued only for the admin token, expiring, bounded, revocable."""

from __future__ import annotations

from typing import Any

import pytest

from federation.service.auth import CallerAuthenticator, verify_gateway_jwt
from federation.service.errors import AuthenticationError
from federation.ui.access import COOKIE_NAME, DashboardAccess, cookie_header

ADMIN = "the-admin-token"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _access(clock: Clock, **kwargs: Any) -> DashboardAccess:
    auth = CallerAuthenticator(
        None,  # type: ignore[arg-type]  # the admin check never touches the store
        audience="isthmus-federation",
        admin_token=ADMIN,
        verify=verify_gateway_jwt,
        clock=clock,
        max_token_ttl_s=300,
    )
    return DashboardAccess(auth, clock=clock, **kwargs)


def test_only_the_admin_token_opens_a_session_and_it_expires() -> None:
    clock = Clock()
    access = _access(clock, ttl_s=60)
    with pytest.raises(AuthenticationError):
        access.login("guess")
    session = access.login(ADMIN)
    assert session != ADMIN and len(session) >= 40
    assert access.session_valid(session)
    assert not access.session_valid("other") and not access.session_valid(None)
    clock.now += 61
    assert not access.session_valid(session)


def test_sessions_are_bounded_and_logout_revokes() -> None:
    clock = Clock()
    access = _access(clock, max_sessions=2)
    first = access.login(ADMIN)
    clock.now += 1
    second = access.login(ADMIN)
    third = access.login(ADMIN)
    assert not access.session_valid(first)  # the oldest made room
    assert access.session_valid(second) and access.session_valid(third)
    access.logout(third)
    assert not access.session_valid(third)


def test_viewers_need_a_session_or_the_admin_bearer_token() -> None:
    access = _access(Clock())
    session = access.login(ADMIN)
    access.require_viewer({COOKIE_NAME: session}, None)
    access.require_viewer({}, f"Bearer {ADMIN}")
    with pytest.raises(AuthenticationError, match="/ui/login"):
        access.require_viewer({}, None)
    with pytest.raises(AuthenticationError):
        access.require_viewer({COOKIE_NAME: "forged"}, "Bearer wrong")


def test_the_cookie_is_httponly_secure_and_strict() -> None:
    header = cookie_header("abc")
    assert header.startswith(f"{COOKIE_NAME}=abc;")
    for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/", "Max-Age="):
        assert attribute in header
