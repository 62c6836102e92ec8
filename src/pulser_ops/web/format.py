"""Jinja filters and helpers: how times, ages, JSON and heartbeats read on the board.

Everything returns plain text or ``Markup`` built from escaped parts; templates autoescape,
so a ``<script>`` in a param or a log line always shows as text.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from markupsafe import Markup, escape

#: What an absent value reads as.
NONE = "\u2013"


def now() -> datetime:
    return datetime.now(UTC)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return NONE
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def secs(seconds: float | None) -> str:
    """A measured time, to the precision it deserves: 12 ms, 4.2 s, 3m 05s."""
    if seconds is None:
        return NONE
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return duration(seconds)


def since(at: datetime | None, ref: datetime | None = None) -> float | None:
    if at is None:
        return None
    return ((ref or now()) - at).total_seconds()


def ago(at: datetime | None, ref: datetime | None = None) -> str:
    s = since(at, ref)
    return NONE if s is None else f"{duration(s)} ago"


def live_ago(at: datetime | None, ref: datetime | None = None, suffix: str = " ago") -> Markup:
    """An age that keeps counting in the browser between refreshes (app.js ticks it);
    ``suffix=""`` reads as an elapsed time ("running 42s")."""
    if at is None:
        return Markup(NONE)
    return Markup(
        '<time data-since="{}" data-suffix="{}" datetime="{}" title="{}">{}</time>'
    ).format(
        at.timestamp(),
        suffix,
        at.isoformat(),
        at.isoformat(timespec="seconds"),
        duration(since(at, ref)) + suffix,
    )


def live_in(at: datetime | None, ref: datetime | None = None) -> Markup:
    """A time to come that keeps counting down in the browser ("in 4m 07s", then "due now":
    app.js ticks it like ``live_ago``), with its stamp as the title."""
    if at is None:
        return Markup(NONE)
    left = -(since(at, ref) or 0.0)
    return Markup('<time data-until="{}" datetime="{}" title="{}">{}</time>').format(
        at.timestamp(), at.isoformat(), stamp(at), f"in {duration(left)}" if left > 0 else "due now"
    )


def lease(expires_at: datetime | None, ref: datetime | None = None) -> str:
    """Where a held run's lease stands: what decides when the sweeper may take the run."""
    left = since(expires_at, ref)
    if left is None:
        return "no lease"
    if left >= 0:
        return f"lease expired {duration(left)} ago"
    return f"lease ends in {duration(-left)}"


def due(at: datetime | None, ref: datetime | None = None) -> str:
    """How long a waiting run has yet to wait ("in 59m 12s"); "" once it may be claimed."""
    left = since(at, ref)
    return "" if left is None or left >= 0 else f"in {duration(-left)}"


def stamp(at: datetime | None) -> str:
    return NONE if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def wall_clock(at: datetime | None, timezone: str = "UTC") -> str:
    """``at`` on the wall clock of ``timezone`` ("Tue 2026-12-01 02:30", the way a schedule's
    times read); "" for a zone only PostgreSQL knows (an abbreviation such as PST)."""
    if at is None:
        return ""
    try:
        return at.astimezone(ZoneInfo(timezone)).strftime("%a %Y-%m-%d %H:%M")
    except (ZoneInfoNotFoundError, ValueError):
        return ""


def short_id(value: Any) -> str:
    return str(value)[:8]


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def compact_json(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def heartbeat(
    heartbeat_at: datetime | None, lease_seconds: int, ref: datetime | None = None
) -> Markup:
    """A pulsing dot: green after a heartbeat, amber past half the lease, red near its end.

    The colour keeps changing in the browser (a CSS animation over the lease, started
    ``age`` seconds in), so a run whose worker died reddens without any refresh."""
    age = max(0.0, since(heartbeat_at, ref) or 0.0)
    frac = age / max(lease_seconds, 1)
    state = "ok" if frac < 0.5 else "warn" if frac < 0.85 else "late" if frac < 1 else "dead"
    title = f"last heartbeat {duration(age)} ago; lease {lease_seconds}s"
    # The lease and age reach the CSS animation through app.js (the Content-Security-Policy
    # allows no inline style attribute).
    return Markup(
        '<span class="hb hb-{}" data-lease="{}" data-beat="{}" title="{}" aria-label="{}"></span>'
    ).format(
        state,
        lease_seconds,
        heartbeat_at.timestamp() if heartbeat_at else "",
        title,
        title,
    )


def status_badge(status: Any) -> Markup:
    s = str(getattr(status, "value", status))
    return Markup('<span class="badge st-{}">{}</span>').format(s, s)


def number(n: int | None) -> str:
    return NONE if n is None else f"{n:,}"


def approx(n: int) -> str:
    """An estimate, the way Supabase Studio shows one."""
    if n >= 1_000_000:
        return f"≈{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"≈{n / 1000:.0f}k"
    return f"≈{n:,}"


FILTERS = {
    "duration": duration,
    "secs": secs,
    "ago": ago,
    "lease": lease,
    "due": due,
    "live_ago": live_ago,
    "live_in": live_in,
    "stamp": stamp,
    "wall_clock": wall_clock,
    "short_id": short_id,
    "pretty_json": pretty_json,
    "compact_json": compact_json,
    "status_badge": status_badge,
    "number": number,
    "approx": approx,
}
GLOBALS = {"heartbeat": heartbeat, "since": since, "escape": escape}
