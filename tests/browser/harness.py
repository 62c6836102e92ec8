"""Real-browser harness: Debian's Chromium driven by Playwright through ``executable_path``
(``playwright install`` cannot download browsers here), and the board served by uvicorn on a
free loopback port in a thread.

Outside CI a machine without chromium skips these tests with the reason; with ``CI=true`` a
missing browser fails them (``scripts/test`` installs it)."""

from __future__ import annotations

import os
import shutil
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from pulser_ops.web.server import serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser")


def chromium_path() -> str:
    """The browser binary: ``CHROMIUM_PATH``, else Debian's (the real binary, not the wrapper
    script, which prints noise), else whatever ``chromium`` is on PATH."""
    given = os.environ.get("CHROMIUM_PATH")
    found = given or next((p for p in CANDIDATES if os.access(p, os.X_OK)), None)
    found = found or shutil.which("chromium")
    if not found:
        reason = "chromium is not installed (apt-get install chromium; scripts/test does)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def artifacts_dir() -> Path:
    base = Path(os.environ.get("PULSER_OPS_TEST_ARTIFACTS") or ROOT / "test-artifacts")
    out = base / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


def shot(page: Any, name: str) -> Path:
    path = artifacts_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def serve(app: Any) -> AbstractContextManager[str]:
    """The board under test on a free loopback port (the same server the demo uses)."""
    return serve_in_thread(app)
