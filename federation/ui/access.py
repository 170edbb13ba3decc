"""Who may look at the dashboard: holders of a session cookie issued for the admin token.

``GET /ui/login?token=<admin token>`` (or the login form) checks the token with the service's
:class:`~federation.service.auth.CallerAuthenticator` — or ``?ticket=<ticket>``, a time-limited
login ticket derived from it (:func:`~federation.service.auth.dashboard_ticket`, what ``isthmus
up`` prints, so the admin token never reaches a terminal) — then issues a random session id in
an ``HttpOnly; Secure; SameSite=Strict`` cookie and redirects to ``/ui`` (so the credential
leaves the address bar at once). The admin token itself is never put in a cookie. Sessions live
in this replica's memory (bounded count, fixed lifetime): a restart or another replica asks to
log in again. API callers may instead send ``Authorization: Bearer <admin token>``.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Mapping

from federation.service.auth import CallerAuthenticator
from federation.service.errors import AuthenticationError

COOKIE_NAME = "isthmus_ui"
SESSION_TTL_S = 12 * 3600.0
MAX_SESSIONS = 1000


class DashboardAccess:
    """Issues and checks dashboard sessions. Trio-thread only (no locking)."""

    def __init__(
        self,
        auth: CallerAuthenticator,
        *,
        clock: Callable[[], float],
        ttl_s: float = SESSION_TTL_S,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self._auth = auth
        self._clock = clock
        self._ttl_s = ttl_s
        self._max = max_sessions
        self._sessions: dict[str, float] = {}

    def login(self, token: str = "", *, ticket: str = "") -> str:
        """A new session id for a valid admin ``token`` or dashboard ``ticket``; raises
        ``AuthenticationError`` (401)."""
        if ticket:
            self._auth.require_dashboard_ticket(ticket)
        else:
            self._auth.require_admin(f"Bearer {token}")
        now = self._clock()
        self._sessions = {sid: exp for sid, exp in self._sessions.items() if exp > now}
        if len(self._sessions) >= self._max:
            oldest = min(self._sessions, key=self._sessions.__getitem__)
            del self._sessions[oldest]
        session = secrets.token_urlsafe(32)
        self._sessions[session] = now + self._ttl_s
        return session

    def logout(self, session: str | None) -> None:
        if session:
            self._sessions.pop(session, None)

    def session_valid(self, session: str | None) -> bool:
        """``True`` for a live session id (constant-time compare against each)."""
        if not session:
            return False
        now = self._clock()
        found = False
        for sid, expires in self._sessions.items():
            if hmac.compare_digest(sid.encode(), session.encode()) and expires > now:
                found = True
        return found

    def require_viewer(self, cookies: Mapping[str, str], authorization: str | None) -> None:
        """Pass for a live session cookie or the admin bearer token; else 401."""
        if self.session_valid(cookies.get(COOKIE_NAME)):
            return
        if authorization:
            self._auth.require_admin(authorization)
            return
        raise AuthenticationError(
            "log in first: open /ui/login?token=<admin token> (admin.token in the "
            "federation's state directory) or send 'Authorization: Bearer <admin token>'",
            reason="no-session",
        )


def cookie_header(session: str, max_age_s: float = SESSION_TTL_S) -> str:
    """The ``Set-Cookie`` value of a session (HttpOnly, Secure, SameSite=Strict, Path=/)."""
    return (
        f"{COOKIE_NAME}={session}; Max-Age={int(max_age_s)}; Path=/; HttpOnly; Secure; "
        "SameSite=Strict"
    )


def clear_cookie_header() -> str:
    return f"{COOKIE_NAME}=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Strict"
