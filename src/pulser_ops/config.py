"""Where the control plane is: explicit arguments first, then the environment.

- ``PULSER_OPS_DATABASE_URL``: direct PostgreSQL.
- ``SUPABASE_URL`` + ``SUPABASE_SERVICE_ROLE_KEY`` / ``SUPABASE_SECRET_KEY`` (or a publishable /
  anon key with a user's JWT in ``PULSER_OPS_ACCESS_TOKEN``): Supabase over HTTP.
- Both: RPC and LISTEN over the database, files through Supabase Storage.
- Neither: the embedded PostgreSQL under ``PULSER_OPS_HOME`` (default ``./.pulser-ops``).

``PULSER_OPS_REFRESH_TOKEN`` (with a publishable key, and optionally the current
``PULSER_OPS_ACCESS_TOKEN``): an operator's Supabase Auth session, refreshed before its access
token expires (``tokens.SupabaseSession``).

``PULSER_OPS_MAX_ROWS`` is the project's Data API row cap ("Max rows", 1000 unless changed):
calls over the Supabase API are split or paged to stay under it (``transport/paging.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import ConfigurationError

Mode = Literal["postgres", "supabase", "embedded"]

#: Returns a valid access token (a user's JWT) whenever asked; ``tokens.SupabaseSession`` is one
#: that refreshes a Supabase Auth session. Called again shortly before the token it gave expires.
TokenProvider = Callable[[], str]

#: Where a key may come from, in the order ``resolve`` looks (named in errors about the key).
KEY_VARIABLES = (
    "SUPABASE_SERVICE_ROLE_KEY",
    "SUPABASE_SECRET_KEY",
    "SUPABASE_PUBLISHABLE_KEY",
    "SUPABASE_ANON_KEY",
)
#: Supabase's default Data API row cap (``[api] max_rows`` in supabase/config.toml).
DEFAULT_MAX_ROWS = 1000


@dataclass(frozen=True)
class Settings:
    mode: Mode
    database_url: str | None
    supabase_url: str | None
    supabase_key: str | None
    access_token: str | None
    home: Path
    storage_dir: Path
    prepare: bool
    #: A provider of fresh access tokens, instead of (or as well as) a fixed ``access_token``.
    token_provider: TokenProvider | None = None
    #: The Data API's row cap (None: none, e.g. a self-hosted PostgREST without max-rows).
    max_rows: int | None = DEFAULT_MAX_ROWS
    #: What supplied ``supabase_key`` (an environment variable, or "--supabase-key / argument").
    key_source: str = "the Supabase key"

    @property
    def has_supabase(self) -> bool:
        return self.supabase_url is not None


def _env(*names: str) -> str | None:
    for n in names:
        v = os.environ.get(n)
        if v:
            return v
    return None


def _max_rows(value: int | None) -> int | None:
    if value is not None:
        return value if value > 0 else None
    raw = _env("PULSER_OPS_MAX_ROWS")
    if raw is None:
        return DEFAULT_MAX_ROWS
    try:
        n = int(raw)
    except ValueError:
        raise ConfigurationError(
            f"PULSER_OPS_MAX_ROWS={raw!r}: give the project's max rows (a number; 0 for none)"
        ) from None
    return n if n > 0 else None


def resolve(
    database_url: str | None = None,
    *,
    supabase_url: str | None = None,
    supabase_key: str | None = None,
    access_token: str | TokenProvider | None = None,
    home: str | Path | None = None,
    storage_dir: str | Path | None = None,
    prepare: bool | None = None,
    max_rows: int | None = None,
) -> Settings:
    """``access_token``: a user's JWT, or a ``TokenProvider`` for long-lived clients (a token
    expires; Realtime closes a channel at its expiry). ``max_rows``: the Data API's row cap
    (default ``PULSER_OPS_MAX_ROWS``, else 1000; 0 for none)."""
    database_url = database_url or _env("PULSER_OPS_DATABASE_URL")
    supabase_url = supabase_url or _env("SUPABASE_URL")
    key_source = "supabase_key (--supabase-key)"
    if not supabase_key:
        key_source = next((n for n in KEY_VARIABLES if os.environ.get(n)), "the Supabase key")
        supabase_key = _env(*KEY_VARIABLES)
    provider = access_token if callable(access_token) else None
    access_token = None if callable(access_token) else access_token
    access_token = access_token or (None if provider else _env("PULSER_OPS_ACCESS_TOKEN"))
    refresh_token = _env("PULSER_OPS_REFRESH_TOKEN")
    if provider is None and refresh_token and supabase_url and supabase_key:
        # An operator's session for long-lived processes (tail, the board's feed): refreshed
        # with Supabase Auth before the access token expires.
        from .tokens import SupabaseSession

        provider = SupabaseSession(
            supabase_url, supabase_key, refresh_token=refresh_token, access_token=access_token
        )
        access_token = None
    if supabase_url and not supabase_key:
        raise ConfigurationError(
            "SUPABASE_URL is set but no key: set SUPABASE_SERVICE_ROLE_KEY (workers, sweeper) "
            "or SUPABASE_PUBLISHABLE_KEY with PULSER_OPS_ACCESS_TOKEN (an operator)"
        )
    home_path = Path(home or _env("PULSER_OPS_HOME") or ".pulser-ops")
    storage_path = Path(storage_dir or _env("PULSER_OPS_STORAGE_DIR") or home_path / "storage")
    if prepare is None:
        # Supabase's transaction pooler (port 6543) has no prepared statements.
        prepare = (
            not (database_url and ":6543" in database_url) and _env("PULSER_OPS_NO_PREPARE") is None
        )
    mode: Mode = "postgres" if database_url else ("supabase" if supabase_url else "embedded")
    return Settings(
        mode=mode,
        database_url=database_url,
        supabase_url=supabase_url.rstrip("/") if supabase_url else None,
        supabase_key=supabase_key,
        access_token=access_token,
        home=home_path,
        storage_dir=storage_path,
        prepare=prepare,
        token_provider=provider,
        max_rows=_max_rows(max_rows),
        key_source=key_source,
    )
