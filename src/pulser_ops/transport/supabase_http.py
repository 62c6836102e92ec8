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
from supabase import Client, ClientOptions, create_client

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


def credentials(settings: Settings, token: str | None = None) -> tuple[str, str, dict[str, str]]:
    """URL, API key and extra headers. With an access token (``token``, else the settings'
    fixed one) the key only identifies the project (``apikey``) and the user's JWT is the
    ``Authorization``, so RLS applies."""
    if not settings.supabase_url or not settings.supabase_key:
        raise ConfigurationError("the Supabase transport needs SUPABASE_URL and a key")
    headers: dict[str, str] = {}
    bearer = token if token is not None else settings.access_token
    if bearer and bearer != settings.supabase_key:
        headers["Authorization"] = f"Bearer {bearer}"
    return settings.supabase_url, settings.supabase_key, headers


def refused_key(settings: Settings, body: Any) -> ConfigurationError | None:
    """The error for a 401 from Supabase's API gateway, or None for any other 401.

    The gateway checks the ``apikey`` before PostgREST or Storage see the request and answers a
    missing or unknown key with 401 and a body without ``code`` (``{"message": "Invalid API
    key", "hint": ...}``); PostgREST's and Storage's own errors always carry one. That is not a
    network failure, retrying cannot help, and the fix is the key: say which variable gave it.
    """
    if not isinstance(body, dict) or "code" in body or "statusCode" in body:
        return None
    said = str(body.get("message") or body.get("error") or "unauthorized")
    return ConfigurationError(
        f"Supabase refused the API key ({said}): check {settings.key_source}; it must be one of"
        f" this project's keys (workers and the sweeper: the secret or service role key;"
        f" operators: the publishable or anon key with their access token)",
        hint=body.get("hint") if isinstance(body.get("hint"), str) else None,
    )


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    """One TLS context per process: loading the CA bundle costs ~0.1-0.2 s per httpx client,
    which would otherwise be paid by every connect(), subscription and file store."""
    return httpx.create_ssl_context()


def sync_http(settings: Settings) -> httpx.Client:
    """The HTTP client handed to supabase-py; it turns a gateway's 401 into ``refused_key``
    (raised from a response hook, so it passes postgrest-py and storage3 untouched)."""

    def check(response: httpx.Response) -> None:
        if response.status_code == 401:
            response.read()
            if (err := refused_key(settings, _json_or_none(response))) is not None:
                raise err

    return httpx.Client(
        timeout=HTTP_TIMEOUT,
        limits=HTTP_LIMITS,
        http2=False,
        follow_redirects=True,
        verify=_tls(),
        event_hooks={"response": [check]},
    )


def async_http(settings: Settings) -> httpx.AsyncClient:
    async def check(response: httpx.Response) -> None:
        if response.status_code == 401:
            await response.aread()
            if (err := refused_key(settings, _json_or_none(response))) is not None:
                raise err

    return httpx.AsyncClient(
        timeout=HTTP_TIMEOUT,
        limits=HTTP_LIMITS,
        http2=False,
        follow_redirects=True,
        verify=_tls(),
        event_hooks={"response": [check]},
    )


class SyncClients:
    """supabase-py's sync client for the current bearer token: the same one while the token
    stays, a new one (on the same HTTP client) when a token provider hands out a fresh token."""

    def __init__(self, settings: Settings, http: httpx.Client) -> None:
        from ..tokens import Tokens

        self.settings = settings
        self.http = http
        self.tokens = Tokens(settings)
        self._held: tuple[str | None, Client] | None = None

    def __call__(self) -> Client:
        token = self.tokens.current()
        held = self._held
        if held is None or held[0] != token:
            url, key, headers = credentials(self.settings, token)
            options = ClientOptions(
                headers=headers, httpx_client=self.http, postgrest_client_retry=False
            )
            held = (token, create_client(url, key, options))
            self._held = held
        return held[1]


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
