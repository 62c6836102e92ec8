"""Supabase Auth sessions for operators: sign in with email and password through supabase-py's
auth client, keep the session in an HttpOnly SameSite cookie, refresh it before it expires.

The cookie holds the tokens GoTrue issued (as ``@supabase/ssr`` does), so a restart of the
server signs nobody out. The server never mints or upgrades a token: every call runs with the
operator's own access token and RLS decides; the claims read here only choose which buttons to
show (the SQL refuses what a claim cannot do).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass
from typing import Any

from supabase_auth import AsyncGoTrueClient

from ..errors import PermissionDenied
from ..tokens import claims_of, gotrue_errors

COOKIE = "pulser_ops_session"
#: Refresh when the access token has less than this many seconds left.
REFRESH_MARGIN_SECONDS = 60


@dataclass(frozen=True)
class OperatorSession:
    access_token: str
    refresh_token: str
    expires_at: int

    @property
    def claims(self) -> dict[str, Any]:
        """The access token's payload, unverified: for display and button choice only."""
        return claims_of(self.access_token)

    def needs_refresh(self, now: float | None = None) -> bool:
        return self.expires_at - (now or time.time()) < REFRESH_MARGIN_SECONDS

    def to_cookie(self) -> str:
        raw = json.dumps([self.access_token, self.refresh_token, self.expires_at])
        return base64.urlsafe_b64encode(raw.encode()).decode()

    @classmethod
    def from_cookie(cls, value: str | None) -> OperatorSession | None:
        if not value:
            return None
        try:
            access, refresh, expires = json.loads(base64.urlsafe_b64decode(value.encode()))
            return cls(str(access), str(refresh), int(expires))
        except (ValueError, TypeError):
            return None


def _session_of(response: Any) -> OperatorSession:
    s = response.session
    if s is None:
        raise PermissionDenied("Supabase Auth returned no session (is the email confirmed?)")
    expires_at = int(s.expires_at or (time.time() + int(s.expires_in)))
    return OperatorSession(s.access_token, s.refresh_token, expires_at)


class SupabaseAuth:
    """Talks to GoTrue (``/auth/v1``) through supabase-py's auth client, with the project's
    public key; it keeps no session of its own (each operator's lives in their cookie)."""

    def __init__(self, supabase_url: str, public_key: str) -> None:
        self._client = AsyncGoTrueClient(
            url=f"{supabase_url.rstrip('/')}/auth/v1",
            headers={"apikey": public_key, "Authorization": f"Bearer {public_key}"},
            auto_refresh_token=False,
            persist_session=False,
        )
        # Two tabs refreshing at once must not both spend the same refresh token.
        self._refreshed: dict[str, tuple[float, OperatorSession]] = {}
        self._lock = asyncio.Lock()

    async def sign_in(self, email: str, password: str) -> OperatorSession:
        with gotrue_errors("sign-in refused"):
            got = await self._client.sign_in_with_password({"email": email, "password": password})
        return _session_of(got)

    async def refresh(self, session: OperatorSession) -> OperatorSession:
        async with self._lock:
            now = time.monotonic()
            self._refreshed = {k: v for k, v in self._refreshed.items() if now - v[0] < 60}
            if session.refresh_token in self._refreshed:
                return self._refreshed[session.refresh_token][1]
            with gotrue_errors("session expired"):
                got = await self._client.refresh_session(session.refresh_token)
            fresh = _session_of(got)
            self._refreshed[session.refresh_token] = (now, fresh)
            return fresh

    async def user_email(self, session: OperatorSession) -> str:
        """Who the token belongs to, as GoTrue says (checks the token once at sign-in)."""
        with gotrue_errors("Supabase Auth refused the session"):
            got = await self._client.get_user(session.access_token)
        if got is None:
            raise PermissionDenied("Supabase Auth knows no such user")
        return got.user.email or got.user.id

    async def close(self) -> None:
        await self._client.close()
