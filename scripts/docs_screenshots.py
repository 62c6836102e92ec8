"""Regenerate the control room's screenshots in docs/img/ from a realistic room.

    .venv/bin/python scripts/docs_screenshots.py          # templates, schedules, artifacts, chat,
                                                          # run detail, a waiting run
    .venv/bin/python scripts/docs_screenshots.py --all    # also the board (light and dark), runs,
                                                          # bulk preview, live log, workers,
                                                          # performance and a firing alert

A throwaway PostgreSQL (the tests' cluster) with the seed templates and a busy room: a day of
finished history per lane (about 430 runs an hour, some failed, with their steps), then today's
traffic made through the SDK as workers and users make it: runs claimed in every lane with their
last log line, lane B at its cap of 4 with a queue behind it, lane D paused with its queue
growing, runs scheduled for later, a fleet of workers of which one (worker-c5) died holding a
run, a nightly report that failed once and passed on its retry (each attempt's artifacts), a
template with a params schema and a chat session that ran it, and a few schedules (one paused,
one whose last due time failed). Only the past is written as plain rows: the history (as
bench/fill.py does), the dead worker's last heartbeat and expired lease, and the schedules' past
due times (no worker or call can make those now). Then the room is served on a loopback port
and Debian's Chromium (Playwright) takes the pictures. Nothing here is asserted: the browser
tests do that (tests/browser/); look at the pictures before committing them.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.harness import chromium_path  # noqa: E402
from tests.support.pgcluster import start_cluster  # noqa: E402

import pulser_ops  # noqa: E402
from pulser_ops.alerts import Rules  # noqa: E402
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
    [held] = c.runs.claim("worker-b2", lanes=["B"])
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
    c.runs.complete(run.id, "worker-b2", held.attempt, "failed", error="3 contract tests failed",
                    error_class="tests_failed")  # fmt: skip
    due_now(run.id)  # the docs do not wait out the retry's backoff
    [held] = c.runs.claim("worker-b3", lanes=["B"])
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
    c.runs.complete(run.id, "worker-b3", held.attempt, "succeeded", result={"ok": True})
    out["report"] = run
    # A long task on lane D whose log the live-log picture follows.
    busy = c.runs.create("long-task", {"seconds": 900})
    c.runs.claim("worker-d1", lanes=["D"])
    for i in range(12):
        c.events.log(busy.id, f"tick {i}")
    out["busy"] = busy
    return out


#: The room's everyday traffic: (template, lane, runs finished per hour, median seconds waited,
#: median seconds run, % failed, its steps with their share of the run's time, what a failure
#: says).
TRAFFIC = (
    ("build-report", "A", 425, 0.4, 38.0, 7, (("shell", 0.8), ("python", 0.2)),
     "upload failed: storage answered 503"),
    ("crawl-site", "B", 430, 0.05, 0.9, 8, (("http", 1.0),), "timeout talking to upstream"),
    ("nightly-report", "B", 1, 30.0, 600.0, 5, (("shell", 0.9), ("http", 0.1)),
     "3 contract tests failed"),
    ("spec-kit", "C", 420, 2.0, 21.0, 7, (("python", 0.7), ("mcp", 0.3)),
     "plan.md failed validation"),
    ("notify", "D", 435, 0.1, 1.2, 7, (("http", 1.0),), "HTTP 502 from hooks.example.com"),
)  # fmt: skip
TEMPLATES = (
    {"name": "build-report", "description": "Render the weekly charts into a PDF report",
     "default_lane": "A", "max_attempts": 3, "lease_seconds": 60,
     "steps": [{"kind": "shell", "name": "render", "command": ["make", "report"]},
               {"kind": "python", "name": "upload", "handler": "noop"}]},
    {"name": "crawl-site", "description": "Fetch one page and store what changed",
     "default_lane": "B", "max_attempts": 3, "lease_seconds": 30,
     "steps": [{"kind": "http", "name": "fetch", "method": "GET", "url": "{{ params.url }}"}]},
    {"name": "spec-kit", "description": "Draft and validate a spec kit for a feature",
     "default_lane": "C", "max_attempts": 3, "lease_seconds": 30,
     "steps": [{"kind": "python", "name": "draft", "handler": "speckit.generate"},
               {"kind": "shell", "name": "check", "command": ["speckit", "validate"]}]},
    {"name": "notify", "description": "Post a message to the team's webhook",
     "default_lane": "D", "max_attempts": 3, "lease_seconds": 30,
     "steps": [{"kind": "http", "name": "post", "method": "POST",
                "url": "https://hooks.example.com/team", "body": {"text": "{{ params.text }}"}}]},
)  # fmt: skip
#: The fleet: (worker, host, lanes, concurrency). worker-c5 is the one that stopped heartbeating.
FLEET = (
    ("worker-a0", "ops-1", ["A", "B"], 4), ("worker-a1", "ops-1", ["A"], 4),
    ("worker-b2", "ops-2", ["B", "C"], 8), ("worker-b3", "ops-2", ["B"], 4),
    ("worker-b4", "ops-4", ["B"], 4), ("worker-c5", "ops-3", ["C"], 2),
    ("worker-d1", "ops-5", ["D"], 1),
)  # fmt: skip

HISTORY = """
with r as (
  select g, now() - random() * interval '24 hours' as finished_at,
         %(took)s * exp(random() * 1.6 - 0.8) as took,
         %(wait)s * exp(random() * 2.4 - 1.2) as waited,
         random() * 100 < %(fail)s as failed
  from generate_series(1, %(n)s) g
)
insert into public.runs (template, lane, status, attempt, max_attempts, lease_seconds, params,
                         worker_id, available_at, claimed_at, finished_at, error, error_class,
                         result, created_at, updated_at)
select %(name)s, %(lane)s, case when failed then 'failed' else 'succeeded' end, 1, 3, 30,
       case %(name)s
         when 'crawl-site' then jsonb_build_object('url', 'https://example.com/page?id=' || g)
         when 'build-report' then jsonb_build_object(
           'week', 48, 'team', (array['infra', 'data', 'web', 'mobile', 'growth'])[1 + g %% 5])
         when 'spec-kit' then jsonb_build_object('feature', 'feature-' || g)
         when 'notify' then jsonb_build_object('text', 'deploy ' || g || ' done')
         else '{"branch": "main", "suite": "all"}'::jsonb
       end,
       (%(workers)s::text[])[1 + g %% cardinality(%(workers)s::text[])],
       finished_at - make_interval(secs => took + waited),
       finished_at - make_interval(secs => took), finished_at,
       case when failed then %(error)s end, case when failed then 'step_failed' end,
       case when not failed then '{"ok": true}'::jsonb end,
       finished_at - make_interval(secs => took + waited), finished_at
from r
"""
STEPS = """
insert into public.run_steps (run_id, attempt, idx, name, kind, status, started_at, finished_at)
select r.id, 1, %(idx)s, %(kind)s, %(kind)s,
       case when r.status = 'failed' and %(last)s then 'failed' else 'succeeded' end,
       r.claimed_at + (r.finished_at - r.claimed_at) * %(lo)s,
       r.claimed_at + (r.finished_at - r.claimed_at) * %(hi)s
from public.runs r where r.template = %(name)s and r.finished_at is not null
  and not exists (select 1 from public.run_steps s where s.run_id = r.id and s.idx = %(idx)s)
"""


def history(db: psycopg.Connection[Any]) -> None:
    """A day of finished runs (about 430 an hour per lane, some failed), with their steps: the
    past a busy room has behind it, which no worker can make now, so it is inserted as plain rows
    (as bench/fill.py does; triggers off, so no NOTIFY storm)."""
    db.execute("set session_replication_role = replica")
    for name, lane, per_hour, wait, took, fail, steps, error in TRAFFIC:
        workers = [w for w, _, lanes, _ in FLEET if lane in lanes and w != "worker-c5"]
        db.execute(HISTORY, {"name": name, "lane": lane, "n": per_hour * 24, "wait": wait,
                             "took": took, "fail": fail, "workers": workers,
                             "error": error})  # fmt: skip
        lo = 0.0
        for idx, (kind, share) in enumerate(steps):
            db.execute(STEPS, {"idx": idx, "kind": kind, "name": name, "lo": lo,
                               "hi": lo + share, "last": idx == len(steps) - 1})  # fmt: skip
            lo += share
    db.execute("reset session_replication_role")
    db.execute("vacuum analyze public.runs, public.run_steps")


def fleet(c: pulser_ops.Client) -> None:
    for worker, host, lanes, concurrency in FLEET:
        c.workers.register(worker, host=host, lanes=lanes, version=pulser_ops.__version__,
                           concurrency=concurrency)  # fmt: skip


def beat(c: pulser_ops.Client) -> None:
    """What the live workers do every few seconds: heartbeat the runs they hold (worker-c5 is
    dead and does not)."""
    held: dict[str, list[tuple[Any, int]]] = {}
    for run in c.runs.list(status=["running"], limit=1000):
        if run.worker_id and run.worker_id != "worker-c5":
            held.setdefault(run.worker_id, []).append((run.id, run.attempt))
    for worker, runs in held.items():
        c.runs.heartbeat_many(worker, runs)


def busy_room(c: pulser_ops.Client, db: psycopg.Connection[Any]) -> Any:
    """Today's traffic, made as workers and users make it: lane A busy, lane B at its cap of 4
    with a queue behind it, lane C with a run whose worker died (lease expired, not swept yet),
    lane D paused with its queue growing; a few runs scheduled for later (the last is returned)."""
    c.lanes.set_concurrency("B", 4)
    later = datetime.now(UTC) + timedelta(minutes=20)
    c.runs.create_many([{"template": "build-report", "params": {"week": 48, "team": t}}
                        for t in ("infra", "data", "web", "mobile", "growth")])  # fmt: skip
    c.runs.create_many([{"template": "crawl-site", "params": {"url": f"https://example.com/page?id={i}"}}
                        for i in range(40, 55)])  # fmt: skip
    c.runs.create_many([{"template": "spec-kit", "params": {"feature": f}}
                        for f in ("sso-login", "audit-export")])  # fmt: skip
    c.runs.create_many([{"template": "notify", "params": {"text": f"deploy {i} done"}}
                        for i in range(5)])  # fmt: skip
    c.runs.create("build-report", {"week": 49, "team": "infra"}, run_after=later)
    waiting = c.runs.create("notify", {"text": "weekly digest"},
                            run_after=later + timedelta(minutes=30))
    c.lanes.pause("D")
    lines = {"build-report": "rendering chart 3/7", "spec-kit": "writing plan.md"}
    for worker, lane, n in (("worker-a0", "A", 1), ("worker-a1", "A", 1), ("worker-b2", "B", 2),
                            ("worker-b3", "B", 1), ("worker-b4", "B", 1), ("worker-c5", "C", 1),
                            ("worker-b2", "C", 1)):  # fmt: skip
        for run in c.runs.claim(worker, lanes=[lane], limit=n):
            url = run.params.get("url")
            line = f"GET {url} -> 200 (143 ms), 3 links new" if url else lines[run.template]
            c.events.log(run.id, line)
            if worker == "worker-c5":
                stuck = run
    # worker-c5 died a while ago: its last heartbeat, and so its run's lease, are in the past.
    db.execute("update public.workers set last_seen_at = now() - interval '100 seconds'"
               " where id = 'worker-c5'")  # fmt: skip
    db.execute(
        "update public.runs set claimed_at = now() - interval '160 seconds',"
        " heartbeat_at = now() - interval '100 seconds',"
        " lease_expires_at = now() - interval '70 seconds' where id = %s",
        (str(stuck.id),))  # fmt: skip
    return waiting


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
                    psycopg.connect(url, autocommit=True) as db, \
                    serve_in_thread(create_app(settings=settings)) as base:  # fmt: skip
                c.templates.upsert_many(TEMPLATES)
                fleet(c)
                history(db)
                page.goto(base + "/")
                page.wait_for_selector("#lane-A")
                png = page.screenshot()  # the board as a report's artifact

                def due_now(run_id: Any) -> None:
                    db.execute("update public.runs set available_at = now() where id = %s",
                               (str(run_id),))  # fmt: skip

                made = populate(c, png, due_now)
                chat = converse(page, base, c)  # before the lanes fill: its run must be claimed
                schedules(c, db)  # the same: their runs are claimed and pass
                made["waiting"] = busy_room(c, db)
                shots(page, base, c, made, chat)
                browser.close()  # before the server stops: no stream left open
    finally:
        cluster.stop()


#: What a team schedules (see ``schedules``).
SCHEDULES = (
    {"name": "nightly-report", "template": "nightly-report", "cron": "30 2 * * *",
     "timezone": "Europe/Paris", "params": {"branch": "main", "suite": "all"},
     "description": "Build, test and publish the nightly report"},
    {"name": "crawl-hourly", "template": "crawl-site", "cron": "0 * * * *",
     "params": {"url": "https://example.com/sitemap.xml"}, "lane": "B", "priority": 5,
     "description": "Refresh the pages the sitemap lists"},
    {"name": "spec-sweep", "template": "spec-kit", "cron": "0 9-18/3 * * 1-5",
     "timezone": "Asia/Tokyo", "params": {}, "description": "Draft specs for new tickets"},
    {"name": "weekly-digest", "template": "notify", "cron": "0 9 * * 1",
     "timezone": "America/New_York", "params": {"text": "weekly digest"}, "enabled": False,
     "description": "Paused while the team webhook moves"},
)  # fmt: skip


def schedules(c: pulser_ops.Client, db: psycopg.Connection[Any]) -> None:
    """The schedules a team has, each fired as the sweeper fires it: the nightly report at 02:30
    in Paris (fired last night; its run passed), the hourly crawl (fired at the top of this
    hour), a spec-kit sweep whose last due time enqueued nothing (its template has since
    required a param the schedule does not give), and a paused weekly digest. Only the due
    times are set back (no schedule can be made due in the past otherwise)."""
    c.schedules.upsert_many(SCHEDULES)
    spec = next(t for t in TEMPLATES if t["name"] == "spec-kit")
    feature = {"type": "string", "description": "the ticket's feature"}
    schema = {"type": "object", "required": ["feature"], "properties": {"feature": feature}}
    c.templates.upsert({**spec, "params_schema": schema})
    db.execute("""
        update public.run_schedules set next_run_at = case name
          when 'nightly-report' then (date_trunc('day', now() at time zone 'Europe/Paris')
            + interval '2 hours 30 minutes' - case when (now() at time zone 'Europe/Paris')::time
            < '02:30' then interval '1 day' else interval '0' end) at time zone 'Europe/Paris'
          else date_trunc('hour', now()) end
        where enabled""")  # fmt: skip
    c.schedules.enqueue_due()
    for held in c.runs.claim("worker-b3", lanes=["B"], limit=2):
        c.events.log(held.id, "done")
        c.runs.complete(held.id, "worker-b3", held.attempt, "succeeded", result={"ok": True})


def converse(page: Any, base: str, c: pulser_ops.Client) -> str:
    """A chat session that starts a run, sees it end, asks for the status and the logs; its URL."""
    page.goto(base + "/chat")
    page.get_by_label("new session title").fill("nightly, by hand")
    page.locator("#new-session").click()
    page.wait_for_url(base + "/chat/*")
    page.wait_for_load_state("load")
    box = page.locator("#chat-text")

    def say(text: str, said: int) -> None:  # a command, then its answer (two messages)
        box.fill(text)
        box.press("Enter")
        page.locator(".msg[data-kind]").nth(said * 2 - 1).wait_for()

    say("run nightly-report branch=release-2.4 suite=contract", 1)
    [run] = [r for r in c.runs.list(template="nightly-report")
             if r.params.get("branch") == "release-2.4"]  # fmt: skip
    [held] = c.runs.claim("worker-b3", lanes=["B"])
    c.events.log(run.id, "running 288 contract tests")
    text = REPORT.format(day="2026-11-30", build="release-2.4", attempt="one", failed=0,
                         note="Contract suite only.")  # fmt: skip
    c.artifacts.put(run.id, "report.md", text, attempt=held.attempt)
    c.runs.complete(run.id, "worker-b3", held.attempt, "succeeded", result={"ok": True})
    say("status", 2)
    say("logs #1 5", 3)
    return str(page.url)


def shots(page: Any, base: str, c: pulser_ops.Client, made: dict[str, Any], chat: str) -> None:
    def shot(name: str, full: bool = False) -> None:
        page.wait_for_timeout(400)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(OUT / f"{name}.png"), full_page=full)
        print(f"docs/img/{name}.png")

    report = made["report"]
    if "--all" in sys.argv:
        beat(c)
        page.goto(base + "/")
        page.wait_for_selector("#stuck-banner")
        shot("control-room-board-light")
        page.locator("#theme-toggle").click()
        shot("control-room-board-dark")
        page.locator("#theme-toggle").click()
        page.goto(base + "/runs?status=failed")
        shot("control-room-runs")
        page.goto(base + "/runs?status=queued&lane=B")
        page.get_by_label("everything matching").check()
        page.get_by_role("button", name="Cancel…").click()
        page.wait_for_selector("dialog#confirm #bulk-preview >> text=Cancel")
        shot("control-room-runs-bulk-preview")
        page.get_by_role("button", name="Keep them").click()
        page.goto(f"{base}/runs/{made['busy'].id}")
        page.wait_for_selector("#log .logline")
        shot("control-room-run-live-log", full=True)
        beat(c)
        page.goto(base + "/workers")
        shot("control-room-workers")
        page.goto(base + "/performance")
        page.wait_for_selector("svg.throughput-chart")
        shot("monitoring-performance", full=True)
        beat(c)
        c.alerts.evaluate(Rules.model_validate({"rules": {"stuck_runs": {"after": 60}}}).sql())
        page.goto(base + "/")
        page.wait_for_selector("#alerts-banner")
        shot("monitoring-board-alerts")
    page.goto(f"{base}/runs/{report.id}")
    page.wait_for_selector("#timeline")
    page.locator("#artifacts tr", has_text="report.md").last.locator(".preview-link").click()
    page.wait_for_selector("#artifact-preview #markdown")
    shot("control-room-run-detail", full=True)
    page.goto(f"{base}/runs/{made['waiting'].id}")
    page.wait_for_selector("#run-now")
    shot("control-room-run-waiting")
    page.goto(base + "/schedules")
    page.wait_for_selector("#schedule-error-spec-sweep")
    shot("control-room-schedules")
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
    page.goto(chat)
    box = page.locator("#chat-text")
    box.fill("run nightly-report suite=")
    page.wait_for_selector("#chat-suggest li")
    shot("control-room-chat")

if __name__ == "__main__":
    main()
