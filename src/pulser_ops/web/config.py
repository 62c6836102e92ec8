"""How a control room is set up: who may use it, and how often it refreshes.

Kept apart from the app so the CLI, an embedding app and the tests build the same thing.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from typing import Literal

#: Seconds between the polling floor's refreshes (paused while the tab is hidden).
POLL_SECONDS = 15
#: Debounce of the change broadcaster: a burst of changes becomes one signal.
DEBOUNCE_SECONDS = 0.25
#: The most runs a bulk action touches at once (Oban's bulk_action_limit is 1000 too).
BULK_CAP = 1000
#: Runs per page of the runs list.
PAGE_SIZE = 50

AuthMode = Literal["open", "local", "supabase"]


@dataclass(frozen=True)
class BasicUser:
    name: str
    password: str
    role: Literal["admin", "read_only"]


@dataclass(frozen=True)
class WebConfig:
    """``open``: no sign-in (loopback only; everyone is ``admin``, or ``read_only``).
    ``local``: an access token (Jupyter-style) and/or HTTP Basic users.
    ``supabase``: operators sign in with Supabase Auth; every call carries their JWT."""

    auth: AuthMode = "open"
    token: str | None = None
    basic_users: tuple[BasicUser, ...] = ()
    read_only: bool = False
    #: Supabase Auth (auth="supabase"): the project URL and its public (anon/publishable) key.
    supabase_url: str | None = None
    supabase_key: str | None = None
    #: Origins (scheme://host[:port]) trusted besides the request's own, e.g. behind a proxy
    #: that rewrites Host.
    trusted_origins: tuple[str, ...] = ()
    #: Set the Secure flag on cookies (on by default except on plain-HTTP loopback).
    secure_cookies: bool = False
    title: str = "pulser-ops"
    poll_seconds: int = POLL_SECONDS
    bulk_cap: int = BULK_CAP
    page_size: int = PAGE_SIZE
    log_max_lines: int = 5000
    log_max_bytes: int = 1 << 20
    extra: dict[str, str] = field(default_factory=dict)


def basic_users_from_env() -> tuple[BasicUser, ...]:
    """``PULSER_OPS_UI_USER``/``_PASSWORD`` (admin) and
    ``PULSER_OPS_UI_READONLY_USER``/``_PASSWORD`` (read-only)."""
    users = []
    for prefix, role in (("PULSER_OPS_UI", "admin"), ("PULSER_OPS_UI_READONLY", "read_only")):
        name, pw = os.environ.get(f"{prefix}_USER"), os.environ.get(f"{prefix}_PASSWORD")
        if name and pw:
            users.append(BasicUser(name, pw, role))  # type: ignore[arg-type]
    return tuple(users)


def new_token() -> str:
    return secrets.token_urlsafe(24)
