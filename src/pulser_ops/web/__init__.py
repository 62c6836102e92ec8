"""The Ops Control Room in the browser: Runboard, runs, run detail with live logs, workers.

Server-rendered (FastAPI + Jinja2) with vendored htmx 2, its SSE extension and idiomorph: no
Node build, no CDN. ``pulser-ops ui`` serves it; ``create_app`` / ``ControlRoom.router``
embed it. Every read and action goes through the SDK, so RLS and the SQL's checks apply.
"""

from __future__ import annotations

from .app import create_app
from .config import BasicUser, WebConfig
from .room import ControlRoom

__all__ = ["BasicUser", "ControlRoom", "WebConfig", "create_app"]
