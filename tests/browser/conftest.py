"""Real-browser fixtures: one Chromium per module, a fresh context (cookies, storage) per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import pulser_ops
from pulser_ops import Client
from pulser_ops.web import create_app
from tests.contract.helpers import SCHEMA

from .harness import chromium_path, serve

playwright = pytest.importorskip("playwright.sync_api")

#: How long an expectation without its own timeout waits (Playwright's default is 5 s). It bounds
#: a broken test and is not what is asserted: the tests that assert a latency pass their own
#: timeout. On a loaded 2-core machine a live refresh (SSE, then the partial's fetch and morph)
#: sometimes took longer than 5 s, and two tests failed about once in ten runs.
EXPECT_TIMEOUT_MS = 15_000
playwright.expect.set_options(timeout=EXPECT_TIMEOUT_MS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium_path()
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(EXPECT_TIMEOUT_MS)
    try:
        yield pg
    finally:
        ctx.close()


@pytest.fixture
def csp_violations(page: Any) -> Iterator[list[str]]:
    """Console reports of anything the Content-Security-Policy refused (there must be none:
    the room needs no inline code, and hostile markup never reaches the DOM as markup)."""
    seen: list[str] = []
    page.on("console", lambda m: seen.append(m.text) if "Content Security Policy" in m.text
            else None)  # fmt: skip
    yield seen
    assert seen == [], seen


@pytest.fixture
def sdk(db_url: str, tmp_path: Any) -> Iterator[Client]:
    """The service-role SDK on the test database, with the ``hello`` template."""
    with pulser_ops.connect(db_url, storage_dir=tmp_path / "files") as c:
        c.templates.upsert(
            {"name": "hello", "description": "says hello", "params_schema": SCHEMA,
             "steps": [{"kind": "shell", "name": "greet", "run": "echo hi"}],
             "default_lane": "A", "max_attempts": 2, "lease_seconds": 30,
             "retry_backoff_seconds": 0, "retry_backoff_max_seconds": 0, "retry_jitter": 0}
        )  # fmt: skip
        yield c


@pytest.fixture
def base(db_url: str, tmp_path: Any) -> Iterator[str]:
    """The control room on the same database and files, served on a free loopback port."""
    settings = pulser_ops.resolve(db_url, storage_dir=tmp_path / "files", home=tmp_path / "h")
    with serve(create_app(settings=settings)) as url:
        yield url
