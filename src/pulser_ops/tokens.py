"""Access tokens that outlive their JWT: a provider the SDK asks again before the token expires.

An operator's JWT lasts an hour on Supabase. Over HTTP every call presents one, and Realtime
checks it on open channels and closes the channel when it expires ("Token has expired"), so a
subscription, a long ``tail`` or the control room's feed died after an hour and every reconnect
failed. ``connect(access_token=provider)`` takes any callable returning a valid token; the
transports call it again when the token they hold is about to expire, send the new one with the
next requests, and re-authenticate open Realtime channels with it (``set_auth``) before the
server would close them.

``SupabaseSession`` is such a provider for a Supabase Auth session: it refreshes it with the
session's refresh token through supabase-py's auth client (GoTrue), rotating it as GoTrue
requires.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .config import Settings, TokenProvider
from .errors import PermissionDenied, TransportError

#: Ask for a new token this long before the current one expires (at most; see ``refresh_at``).
REFRESH_MARGIN_SECONDS = 60.0


def claims_of(token: str) -> dict[str, Any]:
    """A JWT's payload, unverified (to read ``exp``); {} for anything that is not a JWT."""
    try:
        part = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def refresh_at(token: str) -> float | None:
    """When to replace ``token``: a minute before it expires, or after three quarters of its
    life for short ones; None when it does not expire (an API key that is not a JWT)."""
    claims = claims_of(token)
    exp = claims.get("exp")
    if not isinstance(exp, int | float):
        return None
    iat = claims.get("iat")
    life = exp - iat if isinstance(iat, int | float) and iat < exp else REFRESH_MARGIN_SECONDS * 4
    return float(exp) - min(REFRESH_MARGIN_SECONDS, life / 4)


class Tokens:
    """The bearer token of one client: the fixed access token or API key, or the provider's
    latest, replaced shortly before it expires."""

    def __init__(self, settings: Settings) -> None:
        self._provider: TokenProvider | None = settings.token_provider
        fixed = settings.access_token or settings.supabase_key
        self._token: str | None = None if self._provider else fixed
        self._lock = threading.Lock()

    @property
    def refreshing(self) -> bool:
        return self._provider is not None

    def _stale(self) -> bool:
        if self._token is None:
            return True
        due = refresh_at(self._token) if self._provider else None
        return due is not None and time.time() >= due

    def current(self) -> str | None:
        """The token to send now (calls the provider when the held one is due)."""
        if self._provider is not None and self._stale():
            with self._lock:
                if self._stale():
                    self._token = _ask(self._provider)
        return self._token

    async def acurrent(self) -> str | None:
        if self._provider is not None and self._stale():
            # A provider may block on the network (a refresh): off the event loop.
            return await asyncio.to_thread(self.current)
        return self._token

    def next_refresh(self) -> float | None:
        """Seconds until the held token should be replaced (None: never)."""
        if self._provider is None or self._token is None:
            return None
        due = refresh_at(self._token)
        return None if due is None else max(0.0, due - time.time())


def _ask(provider: TokenProvider) -> str:
    try:
        token = provider()
    except (PermissionDenied, TransportError):
        raise
    except Exception as e:
        raise PermissionDenied(f"the access-token provider failed: {e}") from None
    if not isinstance(token, str) or not token:
        raise PermissionDenied("the access-token provider returned no token")
    return token


@contextmanager
def gotrue_errors(what: str) -> Iterator[None]:
    """GoTrue's answers as the SDK's errors: a refusal, or an unreachable service."""
    from supabase_auth.errors import AuthApiError, AuthError

    try:
        yield
    except AuthApiError as e:
        raise PermissionDenied(f"{what}: {e.message}") from None
    except AuthError as e:
        raise TransportError(f"Supabase Auth unreachable: {e.message}") from None


def _gotrue(supabase_url: str, key: str) -> Any:
    """supabase-py's auth client for GoTrue at ``supabase_url``, keeping no session itself."""
    from supabase_auth import SyncGoTrueClient

    return SyncGoTrueClient(
        url=f"{supabase_url.rstrip('/')}/auth/v1",
        headers={"apikey": key, "Authorization": f"Bearer {key}"},
        auto_refresh_token=False,
        persist_session=False,
    )


class SupabaseSession:
    """A ``TokenProvider`` for a Supabase Auth session: the access token while it is fresh,
    then a new one from GoTrue's refresh grant (the refresh token rotates with it).

    ``SupabaseSession(url, publishable_key, refresh_token=..., access_token=...)``, or
    ``SupabaseSession.sign_in(url, key, email, password)``. Thread-safe.
    """

    def __init__(
        self,
        supabase_url: str,
        key: str,
        *,
        refresh_token: str,
        access_token: str | None = None,
    ) -> None:
        self._auth = _gotrue(supabase_url, key)
        self.refresh_token = refresh_token
        self.access_token = access_token
        #: How many times the session was refreshed (for logs and tests).
        self.refreshes = 0
        self._lock = threading.Lock()

    @classmethod
    def sign_in(cls, supabase_url: str, key: str, email: str, password: str) -> SupabaseSession:
        with gotrue_errors("sign-in refused"):
            got = _gotrue(supabase_url, key).sign_in_with_password(
                {"email": email, "password": password}
            )
        if got.session is None:
            raise PermissionDenied("Supabase Auth returned no session")
        return cls(
            supabase_url,
            key,
            refresh_token=got.session.refresh_token,
            access_token=got.session.access_token,
        )

    def __call__(self) -> str:
        with self._lock:
            due = refresh_at(self.access_token) if self.access_token else 0.0
            if self.access_token and (due is None or time.time() < due):
                return self.access_token
            with gotrue_errors("session expired"):
                got = self._auth.refresh_session(self.refresh_token)
            if got.session is None:
                raise PermissionDenied("Supabase Auth returned no session")
            self.access_token = got.session.access_token
            self.refresh_token = got.session.refresh_token
            self.refreshes += 1
            return self.access_token


__all__ = ["SupabaseSession", "TokenProvider", "Tokens", "claims_of", "refresh_at"]
