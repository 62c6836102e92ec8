"""``/auth/v1``: the GoTrue (Supabase Auth) endpoints that supabase-py's auth client uses to sign
an operator in with email and password, refresh the session and read the user.

A test fixture, like the rest of the stand-in: users live in memory (``StandIn.add_user``), not
in ``auth.users``. Shapes follow GoTrue's documented API as ``supabase_auth`` parses it:

- ``POST /auth/v1/token?grant_type=password`` ``{"email", "password"}`` and
  ``POST /auth/v1/token?grant_type=refresh_token`` ``{"refresh_token"}`` answer a session:
  ``access_token``, ``token_type: "bearer"``, ``expires_in``, ``expires_at``, ``refresh_token``,
  ``user``. Refresh tokens rotate: a used one is refused (``refresh_token_already_used``).
- ``GET /auth/v1/user`` with ``Authorization: Bearer <access token>`` answers the user.
- Errors: HTTP 400/401/403 with ``{"code": <error code>, "message": ...}`` and
  ``X-Supabase-Api-Version: 2024-01-01`` (the client then reads ``code`` as the error code).
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import auth

API_VERSION = "2024-01-01"


@dataclass
class User:
    id: str
    email: str
    password: str
    app_metadata: dict[str, Any]
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id, "aud": "authenticated", "role": "authenticated",
            "email": self.email, "email_confirmed_at": self.created_at,
            "app_metadata": {"provider": "email", "providers": ["email"], **self.app_metadata},
            "user_metadata": {}, "identities": [], "created_at": self.created_at,
            "updated_at": self.created_at, "is_anonymous": False,
        }  # fmt: skip


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse(
        {"code": code, "message": message}, status,
        headers={"X-Supabase-Api-Version": API_VERSION},
    )  # fmt: skip


class GoTrue:
    def __init__(self, jwt_secret: str) -> None:
        self.jwt_secret = jwt_secret
        #: Lifetime of issued access tokens (tests shorten it to exercise refreshes).
        self.access_ttl_seconds = 3600
        self._users: dict[str, User] = {}
        self._refresh: dict[str, tuple[str, bool]] = {}  # token -> (user id, used)
        self._lock = threading.Lock()
        self.sign_ins = 0
        self.refreshes = 0

    def add_user(self, email: str, password: str, app_metadata: dict[str, Any] | None = None) -> str:
        user = User(str(uuid.uuid4()), email.lower(), password, dict(app_metadata or {}))
        with self._lock:
            self._users[user.email] = user
        return user.id

    def _session(self, user: User) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "aud": "authenticated", "role": "authenticated", "sub": user.id, "email": user.email,
            "iat": now, "exp": now + self.access_ttl_seconds, "app_metadata": user.json()["app_metadata"],
            "user_metadata": {}, "is_anonymous": False, "session_id": str(uuid.uuid4()),
        }  # fmt: skip
        refresh = secrets.token_urlsafe(12)
        self._refresh[refresh] = (user.id, False)
        return {
            "access_token": auth.sign(self.jwt_secret, claims), "token_type": "bearer",
            "expires_in": self.access_ttl_seconds, "expires_at": now + self.access_ttl_seconds,
            "refresh_token": refresh, "user": user.json(),
        }  # fmt: skip

    async def token(self, request: Request) -> Response:
        grant = request.query_params.get("grant_type")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "bad_json", "Could not parse request body as JSON")
        with self._lock:
            if grant == "password":
                user = self._users.get(str(body.get("email") or "").lower())
                if user is None or not secrets.compare_digest(
                    user.password, str(body.get("password") or "")
                ):
                    return _error(400, "invalid_credentials", "Invalid login credentials")
                self.sign_ins += 1
                return JSONResponse(self._session(user))
            if grant == "refresh_token":
                found = self._refresh.get(str(body.get("refresh_token") or ""))
                if found is None:
                    return _error(400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found")
                user_id, used = found
                if used:
                    return _error(400, "refresh_token_already_used", "Invalid Refresh Token: Already Used")
                self._refresh[str(body["refresh_token"])] = (user_id, True)
                user = next(u for u in self._users.values() if u.id == user_id)
                self.refreshes += 1
                return JSONResponse(self._session(user))
        return _error(400, "unsupported_grant_type", f"unsupported grant_type {grant!r}")

    async def user(self, request: Request) -> Response:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        try:
            claims = auth.verify(self.jwt_secret, token)
        except auth.AuthError as e:
            return _error(403, "bad_jwt", f"invalid JWT: {e.message}")
        with self._lock:
            user = next((u for u in self._users.values() if u.id == claims.get("sub")), None)
        if user is None:
            return _error(403, "user_not_found", "User from sub claim in JWT does not exist")
        return JSONResponse(user.json())

    def routes(self) -> list[Route]:
        return [
            Route("/auth/v1/token", self.token, methods=["POST"]),
            Route("/auth/v1/user", self.user, methods=["GET"]),
        ]
