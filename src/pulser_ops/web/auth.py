"""Who is asking, what they may do, and whether a state change really comes from our own page.

- ``open`` (loopback only): everyone is ``admin`` (``read_only`` with ``--read-only``).
- ``local``: a generated access token (``?token=`` once, then an HttpOnly cookie, or
  ``Authorization: Bearer``) and/or HTTP Basic users from the environment.
- ``supabase``: an operator's Supabase Auth session (``sessions.py``); ``app_metadata.ops_role``
  = ``admin`` shows the admin controls, the SQL decides what each call may do anyway.

Roles: ``admin`` (everything), ``operator`` (act on the runs RLS lets them act on: cancel,
re-run, bulk; not lanes), ``read_only`` (look only).

Every state-changing request passes ``check_same_origin``: browsers send ``Sec-Fetch-Site``
(and ``Origin``) on every POST, so a cross-site form or fetch is refused without CSRF tokens
(what Sidekiq and PgQueuer do).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from starlette.requests import Request

from .config import WebConfig
from .sessions import COOKIE as SESSION_COOKIE
from .sessions import OperatorSession

Role = Literal["admin", "operator", "read_only"]
TOKEN_COOKIE = "pulser_ops_token"


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    #: Which data client serves this principal ("server", or one per Supabase session).
    client_key: str = "server"
    session: OperatorSession | None = None

    @property
    def can_act(self) -> bool:
        """Cancel, re-run, bulk actions (the SQL still checks each run)."""
        return self.role in ("admin", "operator")

    @property
    def is_admin(self) -> bool:
        """Lane pause/resume and concurrency caps."""
        return self.role == "admin"


class NotSignedIn(Exception):
    """No valid credentials: HTML pages redirect to sign-in, others get 401."""

    def __init__(self, basic: bool = False) -> None:
        super().__init__("sign in required")
        self.basic = basic


class Forbidden(Exception):
    pass


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _basic(request: Request, config: WebConfig) -> Principal | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        name, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    for user in config.basic_users:
        if _same(name, user.name) and _same(password, user.password):
            return Principal(name, "read_only" if config.read_only else user.role)
    return None


def presented_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE)


def local_principal(request: Request, config: WebConfig) -> Principal:
    role: Role = "read_only" if config.read_only else "admin"
    if config.auth == "open":
        return Principal("local", role)
    if config.token is not None:
        token = presented_token(request)
        if token is not None and _same(token, config.token):
            return Principal("token", role)
    found = _basic(request, config)
    if found is not None:
        return found
    raise NotSignedIn(basic=bool(config.basic_users) and config.token is None)


def supabase_principal(session: OperatorSession) -> Principal:
    claims = session.claims
    meta = claims.get("app_metadata") if isinstance(claims.get("app_metadata"), dict) else {}
    ops_role = (meta or {}).get("ops_role")
    role: Role = (
        "admin" if ops_role == "admin" else "read_only" if ops_role == "read_only" else "operator"
    )
    name = str(claims.get("email") or claims.get("sub") or "operator")
    return Principal(name, role, client_key=f"session:{session.access_token}", session=session)


def session_from(request: Request) -> OperatorSession | None:
    return OperatorSession.from_cookie(request.cookies.get(SESSION_COOKIE))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_same_origin(request: Request, config: WebConfig) -> None:
    """Refuse a state change a browser says came from another site.

    ``Sec-Fetch-Site`` is set by every current browser and cannot be forged by a page; where it
    is missing (old browsers), ``Origin`` must be ours. A request with neither is not from a
    browser page (curl, a script holding the credentials) and cannot be a CSRF.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        if site not in ("same-origin", "none"):
            raise Forbidden(f"cross-site request refused (Sec-Fetch-Site: {site})")
        return
    origin = request.headers.get("origin")
    if origin is None:
        return
    own = _origin(str(request.base_url))
    allowed = {own, *(o.rstrip("/").lower() for o in config.trusted_origins)}
    if origin.rstrip("/").lower() not in allowed:
        raise Forbidden(f"cross-origin request refused (Origin: {origin})")
