"""The API gateway in front of the services: which ``apikey`` gets in, and as whom.

On Supabase every request to ``/rest/v1``, ``/auth/v1`` and ``/realtime/v1`` passes the
project's API gateway first. It checks the ``apikey`` (header, or the ``apikey`` query parameter
the Realtime socket uses) and refuses a missing or unknown one with **401 and a JSON body that
has no ``code``** (``{"message": "Invalid API key", "hint": ...}``, supabase-js#479): PostgREST,
which would have answered with a code, never sees the request.

It knows four keys per project:

- the legacy JWT keys (``anon``, ``service_role``): the ``Authorization: Bearer`` token is
  passed on as it is, or the key itself when there is none;
- the new keys, ``sb_publishable_…`` (acts as ``anon``) and ``sb_secret_…`` (acts as
  ``service_role``): they are not JWTs, so the gateway hands the services a short-lived JWT of
  that role instead. A user's JWT in ``Authorization`` still wins; an ``sb_`` key may stand in
  ``Authorization`` only when it equals the ``apikey``
  (https://supabase.com/docs/guides/api/api-keys).

Storage is reached without an ``apikey`` too (signed URLs are fetched by browsers), so there the
check applies only when a key is sent. The services behind keep verifying the JWT they are given
(``auth.py``), exactly as before.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from . import auth

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Lifetime of the JWT the gateway mints for an ``sb_`` key. It is also the token a Realtime
#: socket opened with the key runs on, so it must outlive the socket: a day, the cap Supabase
#: puts on public Realtime connections (not otherwise modelled).
MINTED_TTL_SECONDS = 24 * 3600

NO_KEY = {
    "message": "No API key found in request",
    "hint": "No `apikey` request header or url param was found.",
}
BAD_KEY = {
    "message": "Invalid API key",
    "hint": "Double check your Supabase `anon` or `service_role` API key.",
}
BAD_BEARER = {
    "message": "Invalid API key",
    "hint": "An API key may be sent as the Bearer token only together with the same `apikey`.",
}


@dataclass
class Keys:
    """The project's API keys (legacy JWT keys and the new ``sb_`` keys)."""

    secret: str
    anon: str
    service: str
    publishable: str = field(default_factory=lambda: "sb_publishable_" + secrets.token_urlsafe(18))
    secret_key: str = field(default_factory=lambda: "sb_secret_" + secrets.token_urlsafe(24))

    def role_of_new_key(self, key: str) -> str | None:
        if secrets.compare_digest(key, self.publishable):
            return "anon"
        if secrets.compare_digest(key, self.secret_key):
            return "service_role"
        return None

    def is_legacy(self, key: str) -> bool:
        return secrets.compare_digest(key, self.anon) or secrets.compare_digest(key, self.service)

    def minted(self, role: str) -> str:
        now = int(time.time())
        return auth.sign(
            self.secret,
            {
                "iss": "supabase-standin-gateway",
                "role": role,
                "iat": now,
                "exp": now + MINTED_TTL_SECONDS,
            },
        )

    def bearer_for(self, apikey: str, bearer: str | None) -> str | dict[str, str]:
        """The JWT the services get for this key and Authorization token, or a refusal body."""
        new_role = self.role_of_new_key(apikey)
        if new_role is None and not self.is_legacy(apikey):
            return BAD_KEY
        if bearer and bearer.startswith("sb_"):
            if not secrets.compare_digest(bearer, apikey):
                return BAD_BEARER
            bearer = None
        if bearer:
            return bearer  # a user's JWT (or a legacy key): the service verifies it
        return self.minted(new_role) if new_role is not None else apikey


def _service(path: str) -> str | None:
    for prefix in ("/rest/v1", "/auth/v1", "/realtime/v1", "/storage/v1"):
        if path == prefix or path.startswith(prefix + "/"):
            return prefix.split("/")[1]
    return None


class Gateway:
    """ASGI middleware: admit or refuse, and rewrite ``Authorization`` for the services."""

    def __init__(self, app: ASGIApp, keys: Keys) -> None:
        self.app = app
        self.keys = keys
        #: Requests refused at the gateway (for tests).
        self.refused = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        service = _service(scope["path"])
        if service is None:
            await self.app(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"]]
        query = parse_qsl(scope.get("query_string", b"").decode(), keep_blank_values=True)
        apikey = next((v.decode() for k, v in headers if k == b"apikey"), None) or next(
            (v for k, v in query if k == "apikey"), None
        )
        authz = next((v.decode() for k, v in headers if k == b"authorization"), "")
        bearer = authz[7:].strip() if authz.lower().startswith("bearer ") else None
        if not apikey:
            if service == "storage":
                await self.app(scope, receive, send)
                return
            await self._refuse(scope, send, NO_KEY)
            return
        token = self.keys.bearer_for(apikey, bearer)
        if isinstance(token, dict):
            await self._refuse(scope, send, token)
            return
        headers = [(k, v) for k, v in headers if k not in (b"authorization", b"apikey")]
        headers += [(b"authorization", f"Bearer {token}".encode()), (b"apikey", token.encode())]
        # The Realtime socket reads its key from the query string: hand it the JWT there too.
        query = [(k, token if k == "apikey" else v) for k, v in query]
        scope = {**scope, "headers": headers, "query_string": urlencode(query).encode()}
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, send: Send, body: dict[str, str]) -> None:
        self.refused += 1
        raw = json.dumps(body).encode()
        start = {
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
            ],
        }
        if scope["type"] == "http":
            await send({"type": "http.response.start", **start})
            await send({"type": "http.response.body", "body": raw})
        else:  # refuse the websocket upgrade with a plain HTTP 401, as the gateway does
            await send({"type": "websocket.http.response.start", **start})
            await send({"type": "websocket.http.response.body", "body": raw})
