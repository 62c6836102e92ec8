"""JWT handling shared by the REST, Storage and Realtime parts of the stand-in.

Supabase's gateway accepts the key in ``apikey`` and/or ``Authorization: Bearer``;
PostgREST then verifies the HS256 JWT with the project's secret and uses its
``role`` claim as the Postgres role (``db-anon-role`` when there is no token).
This module is the one place that decides "who is calling" so all three
services agree.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

ANON_ROLE = "anon"


class AuthError(Exception):
    """The presented JWT is unusable; ``code`` is PostgREST's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Caller:
    """The verified identity of one request: Postgres role plus the claims JSON."""

    role: str
    claims: dict[str, Any]
    token: str | None

    @property
    def is_anon(self) -> bool:
        return self.role == ANON_ROLE


def sign(secret: str, claims: Mapping[str, Any]) -> str:
    return jwt.encode(dict(claims), secret, algorithm="HS256")


def make_key(secret: str, role: str, ttl_seconds: int = 10 * 365 * 86400) -> str:
    """A legacy-style API key: a long-lived JWT whose only interesting claim is role."""
    now = int(time.time())
    return sign(secret, {"iss": "supabase-standin", "role": role, "iat": now,
                         "exp": now + ttl_seconds})


def verify(secret: str, token: str) -> dict[str, Any]:
    """Decode and check signature/expiry; raise AuthError shaped like PostgREST's."""
    if token.count(".") != 2:
        raise AuthError("PGRST301", f"Expected 3 parts in JWT; got {token.count('.') + 1}")
    try:
        claims: dict[str, Any] = jwt.decode(
            token, secret, algorithms=["HS256"], options={"verify_aud": False}
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("PGRST303", "JWT expired") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError("PGRST301", f"JWSError: {exc}") from None
    return claims


def unverified_claims(token: str) -> dict[str, Any]:
    """A JWT's payload without checking it (to word an error about an expired token)."""
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return {}
    return claims


def caller_from_token(secret: str, token: str | None) -> Caller:
    if not token:
        return Caller(role=ANON_ROLE, claims={"role": ANON_ROLE}, token=None)
    claims = verify(secret, token)
    role = claims.get("role") or ANON_ROLE
    if not isinstance(role, str):
        raise AuthError("PGRST301", "role claim must be a string")
    return Caller(role=role, claims=claims, token=token)


def caller_from_headers(secret: str, headers: Mapping[str, str]) -> Caller:
    """Bearer token wins; otherwise the apikey (the CLI's gateway does the same)."""
    authz = headers.get("authorization", "")
    token: str | None = None
    if authz.lower().startswith("bearer "):
        token = authz[7:].strip()
    elif headers.get("apikey"):
        token = headers["apikey"]
    return caller_from_token(secret, token)
