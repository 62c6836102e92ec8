"""Regenerate the control room's screenshots in docs/img/ from a realistic room.

    .venv/bin/python scripts/docs_screenshots.py          # templates, artifacts, chat, run detail
    .venv/bin/python scripts/docs_screenshots.py --all    # also the board, runs, workers, live log

(The board, runs and workers pictures in docs/img were taken on a busier room than this script
builds: keep them unless the pages changed.)

A throwaway PostgreSQL (the tests' cluster) with the seed templates, runs in every state made
through the SDK as workers would (claims, log lines, artifacts, a retry, a sweepable run), a
template with a params schema, a chat session with a conversation; then the room served on a
loopback port and Debian's Chromium (Playwright) taking the pictures. Nothing here is asserted:
the browser tests do that (tests/browser/).
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.harness import chromium_path  # noqa: E402
from tests.support.pgcluster import start_cluster  # noqa: E402

import pulser_ops  # noqa: E402
from pulser_ops.db.migrate import push  # noqa: E402
from pulser_ops.web import create_app  # noqa: E402
from pulser_ops.web.server import serve_in_thread  # noqa: E402

OUT = ROOT / "docs" / "img"
REPORT = """# Nightly report — {day}

Build **{build}** on lane B, attempt {attempt}.

| suite | passed | failed |
| --- | ---: | ---: |
| unit | 412 | 0 |
| contract | 288 | {failed} |
| browser | 18 | 0 |

{note}

![board at the time](board.png)
"""


def populate(c: pulser_ops.Client, png: bytes, due_now: Callable[[Any], None]) -> dict[str, Any]:
    c.templates.upsert({
        "name": "nightly-report", "description": "Build, test and publish the nightly report",
        "default_lane": "B", "max_attempts": 2, "lease_seconds": 120, "timeout_seconds": 3600,
        "retry_backoff_seconds": 30, "retry_backoff_max_seconds": 300,
        "non_retryable_errors": ["config_error"],
        "params_schema": {"type": "object", "required": ["branch"], "additionalProperties": False,
                          "properties": {
                              "branch": {"type": "string", "description": "git branch to build",
                                         "default": "main"},
                              "suite": {"type": "string", "enum": ["unit", "contract", "all"],
                                        "default": "all", "description": "which tests"},
                              "publish": {"type": "boolean", "default": True}}},
        "steps": [
            {"kind": "shell", "name": "build", "command": ["make", "build"]},
            {"kind": "shell", "name": "test", "command": "make test SUITE=$PULSER_PARAM_SUITE"},
            {"kind": "http", "name": "publish", "method": "POST",
             "url": "https://reports.example.com/nightly",
             "body": {"branch": "{{ params.branch }}"}},
        ]})  # fmt: skip
    out: dict[str, Any] = {}
    # A nightly report that failed once and passed on its retry: two attempts' artifacts.
    run = c.runs.create("nightly-report", {"branch": "main"})
    [held] = c.runs.claim("worker-b1", lanes=["B"])
    for line in ("checking out main @ 4f2a9c1", "building 14 packages", "running 718 tests"):
        c.events.log(run.id, line)
    first = REPORT.format(day="2026-11-29", build="4f2a9c1", attempt="one", failed=3,
                          note="3 contract tests failed: the database restarted under them.")
    c.artifacts.put(run.id, "report.md", first, attempt=1)
    failures = ["test_claim_after_restart", "test_sweep_after_restart", "test_listen_reconnect"]
    c.artifacts.put(run.id, "result.json", json.dumps({
        "ok": False, "build": "4f2a9c1", "suites": {"unit": {"passed": 412, "failed": 0},
        "contract": {"passed": 285, "failed": 3, "failures": failures}}, "seconds": 612.4}),
        attempt=1)  # fmt: skip
    c.runs.complete(run.id, "worker-b1", held.attempt, "failed", error="3 contract tests failed",
                    error_class="tests_failed")  # fmt: skip
    due_now(run.id)  # the docs do not wait out the retry's backoff
    [held] = c.runs.claim("worker-b2", lanes=["B"])
    c.events.log(run.id, "running 718 tests (attempt 2)")
    c.artifacts.put(run.id, "report.md", REPORT.format(
        day="2026-11-29", build="4f2a9c1", attempt="two", failed=0,
        note="All green on the retry."), attempt=2)  # fmt: skip
    c.artifacts.put(run.id, "result.json", json.dumps({
        "ok": True, "build": "4f2a9c1", "suites": {"unit": {"passed": 412, "failed": 0},
        "contract": {"passed": 288, "failed": 0}, "browser": {"passed": 18, "failed": 0}},
        "seconds": 598.1, "published": "https://reports.example.com/nightly/2026-11-29"}),
        attempt=2)  # fmt: skip
    c.artifacts.put(run.id, "board.png", png, content_type="image/png", attempt=2)
    c.runs.complete(run.id, "worker-b2", held.attempt, "succeeded", result={"ok": True})
    out["report"] = run
    # Some traffic on the other lanes.
    for i in range(3):
        c.runs.create("hello", {"name": f"team {i}"})
    busy = c.runs.create("long-task", {"seconds": 900})
    c.runs.claim("worker-d1", lanes=["D"])
    for i in range(12):
        c.events.log(busy.id, f"tick {i}")
    out["busy"] = busy
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    cluster = start_cluster()
    try:
        url = cluster.create_database("pulser_docs")
        push(url, include_seed=True)
        with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
            files = Path(tmp) / "files"
            settings = pulser_ops.resolve(url, storage_dir=files, home=Path(tmp) / "home")
            browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            with pulser_ops.connect(url, storage_dir=files) as c, \
                    serve_in_thread(create_app(settings=settings)) as base:  # fmt: skip
                page.goto(base + "/")
                page.wait_for_selector("#lane-A")
                png = page.screenshot()
                with psycopg.connect(url, autocommit=True) as db:

                    def due_now(run_id: Any) -> None:
                        db.execute("update public.runs set available_at = now() where id = %s",
                                   (str(run_id),))  # fmt: skip

                    made = populate(c, png, due_now)
                shots(page, base, c, made)
                browser.close()  # before the server stops: no stream left open
    finally:
        cluster.stop()


def shots(page: Any, base: str, c: pulser_ops.Client, made: dict[str, Any]) -> None:
    def shot(name: str, full: bool = False) -> None:
        page.wait_for_timeout(400)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(OUT / f"{name}.png"), full_page=full)
        print(f"docs/img/{name}.png")

    report = made["report"]
    if "--all" in sys.argv:
        page.goto(base + "/")
        page.wait_for_selector(".card")
        shot("control-room-board-light")
        page.locator("#theme-toggle").click()
        shot("control-room-board-dark")
        page.locator("#theme-toggle").click()
        page.goto(base + "/runs")
        shot("control-room-runs")
        page.goto(f"{base}/runs/{made['busy'].id}")
        page.wait_for_selector("#log .logline")
        shot("control-room-run-live-log")
        page.goto(base + "/workers")
        shot("control-room-workers")
    page.goto(f"{base}/runs/{report.id}")
    page.wait_for_selector("#timeline")
    page.locator("#artifacts tr", has_text="report.md").last.locator(".preview-link").click()
    page.wait_for_selector("#artifact-preview #markdown")
    shot("control-room-run-detail", full=True)
    page.goto(base + "/templates")
    shot("control-room-templates")
    page.goto(base + "/templates/nightly-report")
    page.wait_for_selector("#run-form")
    shot("control-room-template-editor", full=True)
    page.goto(f"{base}/runs/{report.id}/artifacts/report.md?attempt=2")
    page.wait_for_selector("#markdown img")
    shot("control-room-artifact-markdown", full=True)
    page.goto(f"{base}/runs/{report.id}/artifacts/result.json?attempt=1")
    shot("control-room-artifact-json", full=True)
    page.goto(f"{base}/runs/{report.id}/artifacts/board.png?attempt=2")
    page.wait_for_function("document.getElementById('artifact-image').naturalWidth > 0")
    shot("control-room-artifact-image")
    page.goto(f"{base}/diff?a={report.id}:1:report.md&b={report.id}:2:report.md")
    shot("control-room-diff")
    # Chat: a session that starts a run and watches it end.
    page.goto(base + "/chat")
    page.get_by_label("new session title").fill("nightly, by hand")
    page.locator("#new-session").click()
    page.wait_for_url(base + "/chat/*")
    page.wait_for_load_state("load")
    box = page.locator("#chat-text")
    for text in ("run nightly-report branch=release-2.4 suite=contract",):
        box.fill(text)
        box.press("Enter")
        page.wait_for_timeout(600)
    [run] = [r for r in c.runs.list(template="nightly-report")
             if r.params.get("branch") == "release-2.4"]  # fmt: skip
    [held] = c.runs.claim("worker-b3", lanes=["B"])
    c.events.log(run.id, "running 288 contract tests")
    text = REPORT.format(day="2026-11-30", build="release-2.4", attempt="one", failed=0,
                         note="Contract suite only.")
    c.artifacts.put(run.id, "report.md", text, attempt=held.attempt)
    c.runs.complete(run.id, "worker-b3", held.attempt, "succeeded", result={"ok": True})
    for text in ("status", "logs #1 5"):
        box.fill(text)
        box.press("Enter")
        page.wait_for_timeout(600)
    box.fill("run nightly-report suite=")
    page.wait_for_selector("#chat-suggest li")
    shot("control-room-chat")


if __name__ == "__main__":
    main()
