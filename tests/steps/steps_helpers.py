"""Helpers shared by the step tests (kept out of conftest so tests can import them)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def pid_gone(pid: int) -> bool:
    """True if ``pid`` no longer runs (missing, or a zombie nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    # state is the field after the parenthesised command name
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def wait_until(predicate: Callable[[], bool], *, limit: float = 10.0) -> bool:
    """Poll ``predicate`` until true or ``limit`` seconds passed (a wait, not a timing test)."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())
