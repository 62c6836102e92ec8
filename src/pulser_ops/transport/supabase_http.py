"""What the Supabase transport shares between its sync and async halves: the HTTP clients it
hands to supabase-py, how a ``Call`` becomes an RPC body, how a response becomes rows, and how
PostgREST / httpx failures become the SDK's typed errors.

Kept apart from the transports so that the rules (which failure is retryable, what an empty
body means) are written once and are the same as the direct PostgreSQL transport's.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import httpx
from postgrest.exceptions import APIError
from pydantic_core import to_jsonable_python

from ..calls import Call
from ..config import Settings
from ..errors import (
    ConfigurationError,
    NotFound,
    PermissionDenied,
    PulserOpsError,
    Timeout,
    TransportError,
    error_for_code,
)

#: Client-side limits. The API's own statement timeout (8 s on Supabase) fires first for RPCs;
#: this only bounds a hung connection.
HTTP_TIMEOUT = httpx.Timeout(60.0, connect=10.0)

#: supabase-py #1064: an idle pooled HTTP/2 connection that the gateway already closed fails the
#: next request with ``RemoteProtocolError``, and POSTs are not retried. HTTP/1.1 with few,
#: short-lived keep-alive connections makes that window small, and ``with_retry`` covers
#: whatever is left for calls that are safe to repeat.
HTTP_LIMITS = httpx.Limits(max_connections=16, max_keepalive_connections=2, keepalive_expiry=5.0)


def credentials(settings: Settings) -> tuple[str, str, dict[str, str]]:
    """URL, API key and extra headers. With an access token the key only identifies the
    project (``apikey``) and the user's JWT is the ``Authorization``, so RLS applies."""
    if not settings.supabase_url or not settings.supabase_key:
        raise ConfigurationError("the Supabase transport needs SUPABASE_URL and a key")
    headers: dict[str, str] = {}
    if settings.access_token:
        headers["Authorization"] = f"Bearer {settings.access_token}"
    return settings.supabase_url, settings.supabase_key, headers


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    """One TLS context per process: loading the CA bundle costs ~0.1-0.2 s per httpx client,
    which would otherwise be paid by every connect(), subscription and file store."""
    return httpx.create_ssl_context()


def sync_http() -> httpx.Client:
    return httpx.Client(
        timeout=HTTP_TIMEOUT,
        limits=HTTP_LIMITS,
        http2=False,
        follow_redirects=True,
        verify=_tls(),
    )


def async_http() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=HTTP_TIMEOUT,
        limits=HTTP_LIMITS,
        http2=False,
        follow_redirects=True,
        verify=_tls(),
    )


def rpc_body(call: Call[Any]) -> dict[str, Any]:
    """The JSON object of named arguments; PostgREST converts each to the declared pg type."""
    return {name: to_jsonable_python(arg.value) for name, arg in call.args.items()}


def rows_of(fn: str, data: Any) -> Sequence[Mapping[str, Any]]:
    """Rows exactly as ``select * from fn(...)`` gives them: a composite is one row, a set is
    its rows, void (204) and an empty set are no rows, a scalar is one row named after fn."""
    if data is None:
        return []
    if isinstance(data, list):
        return [r if isinstance(r, dict) else {fn: r} for r in data]
    if isinstance(data, dict):
        return [data]
    return [{fn: data}]


def _detail(details: Any) -> str | None:
    if details is None or details == "":
        return None
    return details if isinstance(details, str) else json.dumps(details)


def translate_api_error(e: APIError) -> PulserOpsError:
    """A PostgREST error body → the typed error for its SQLSTATE (the same table as psycopg).

    Without a JSON body supabase-py puts the HTTP status (or the Proxy-Status code) in ``code``;
    a gateway 5xx has no SQLSTATE and means the API could not be reached.
    """
    code = e.code
    message = e.message or repr(e)
    detail = _detail(e.details)
    if code is not None and len(code) == 3 and code.isdigit():
        status = int(code)
        if status in (401, 403):
            return PermissionDenied(message, detail=detail, hint=e.hint, sqlstate=None)
        if status == 404:
            return NotFound(message, detail=detail, hint=e.hint, sqlstate=None)
        if status == 504:
            return Timeout(f"Supabase API timed out ({status}): {message}")
        return TransportError(f"Supabase API error {status}: {message}")
    if code is not None and code.startswith("PGRST3"):  # JWT missing, invalid or expired
        return PermissionDenied(message, detail=detail, hint=e.hint, sqlstate=code)
    if code in ("PGRST000", "PGRST001", "PGRST002"):  # PostgREST cannot reach the database
        return TransportError(f"Supabase API cannot reach the database ({code}): {message}")
    if code is None:
        return TransportError(f"Supabase API error without a code: {message}")
    return error_for_code(code, message, detail=detail, hint=e.hint)


def translate_http_error(e: httpx.HTTPError) -> TransportError:
    """A request that never got a response (or got a broken one)."""
    text = str(e).strip() or type(e).__name__
    if isinstance(e, httpx.TimeoutException):
        return Timeout(f"Supabase API request timed out: {text}")
    return TransportError(f"Supabase API unreachable: {text}")
