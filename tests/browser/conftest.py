"""Real-browser fixtures: one Chromium per module, a fresh context (cookies, storage) per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import pulser_ops
from pulser_ops.web import create_app

from .harness import chromium_path, serve

playwright = pytest.importorskip("playwright.sync_api")


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
    try:
        yield pg
    finally:
        ctx.close()


@pytest.fixture
def base(db_url: str, tmp_path: Any) -> Iterator[str]:
    """The board over a fresh database, served on a free loopback port; its URL."""
    settings = pulser_ops.resolve(db_url, storage_dir=tmp_path / "files", home=tmp_path / "h")
    with serve(create_app(settings=settings)) as url:
        yield url
