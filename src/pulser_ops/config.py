"""Where the control plane is: explicit arguments first, then the environment.

- ``PULSER_OPS_DATABASE_URL``: direct PostgreSQL.
- ``SUPABASE_URL`` + ``SUPABASE_SERVICE_ROLE_KEY`` / ``SUPABASE_SECRET_KEY`` (or a publishable /
  anon key with a user's JWT in ``PULSER_OPS_ACCESS_TOKEN``): Supabase over HTTP.
- Both: RPC and LISTEN over the database, files through Supabase Storage.
- Neither: the embedded PostgreSQL under ``PULSER_OPS_HOME`` (default ``./.pulser-ops``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import ConfigurationError

Mode = Literal["postgres", "supabase", "embedded"]


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

    @property
    def has_supabase(self) -> bool:
        return self.supabase_url is not None


def _env(*names: str) -> str | None:
    for n in names:
        v = os.environ.get(n)
        if v:
            return v
    return None


def resolve(
    database_url: str | None = None,
    *,
    supabase_url: str | None = None,
    supabase_key: str | None = None,
    access_token: str | None = None,
    home: str | Path | None = None,
    storage_dir: str | Path | None = None,
    prepare: bool | None = None,
) -> Settings:
    database_url = database_url or _env("PULSER_OPS_DATABASE_URL")
    supabase_url = supabase_url or _env("SUPABASE_URL")
    supabase_key = supabase_key or _env(
        "SUPABASE_SERVICE_ROLE_KEY",
        "SUPABASE_SECRET_KEY",
        "SUPABASE_PUBLISHABLE_KEY",
        "SUPABASE_ANON_KEY",
    )
    access_token = access_token or _env("PULSER_OPS_ACCESS_TOKEN")
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
    )
