"""The monitoring pieces of the board in a real browser: the Performance page (its tab, its
shortcut, its charts in both themes) and a firing alert on the Runboard. Screenshots in
test-artifacts/screenshots/ (performance-day, performance-week-dark, board-alerts)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from playwright.sync_api import expect

import pulser_ops
from pulser_ops import Client
from pulser_ops.alerts import Rules

from .harness import shot

#: (template, lane, runs over the last day, median seconds waited, median seconds run, fail %)
HISTORY = (
    ("build-report", "A", 420, 0.4, 38.0, 4),
    ("http-check", "B", 900, 0.05, 0.8, 12),
    ("resize-images", "C", 260, 6.0, 140.0, 1),
    ("nightly-export", "D", 24, 30.0, 1500.0, 0),
)
STEPS = {"build-report": ("shell", "python"), "http-check": ("http",),
         "resize-images": ("docker", "python"), "nightly-export": ("shell",)}  # fmt: skip


def _seed(db_url: str) -> None:
    """A day of finished runs, with the spread real workloads have (log-normal times), and
    their step rows; inserted directly, as a day of real traffic would have left them."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        for name, lane, n, wait, took, fail in HISTORY:
            conn.execute(
                "insert into public.run_templates (name, default_lane) values (%s, %s)"
                " on conflict do nothing", (name, lane))  # fmt: skip
            conn.execute(
                """
                with r as (
                  select g, now() - (random() * interval '23 hours') as finished_at,
                         %(took)s * exp(random() * 1.6 - 0.8) as took,
                         %(wait)s * exp(random() * 2.4 - 1.2) as waited,
                         random() * 100 < %(fail)s as failed
                  from generate_series(1, %(n)s) g
                )
                insert into public.runs (template, lane, status, attempt, max_attempts,
                  lease_seconds, worker_id, available_at, claimed_at, finished_at, error,
                  created_at)
                select %(name)s, %(lane)s, case when failed then 'failed' else 'succeeded' end,
                       1, 1, 60, 'worker-' || (g %% 3),
                       finished_at - make_interval(secs => took + waited),
                       finished_at - make_interval(secs => took), finished_at,
                       case when failed then 'step failed' end,
                       finished_at - make_interval(secs => took + waited)
                from r
                """,
                {"name": name, "lane": lane, "n": n, "wait": wait, "took": took, "fail": fail},
            )
            for idx, kind in enumerate(STEPS[name]):
                conn.execute(
                    """
                    insert into public.run_steps (run_id, attempt, idx, name, kind, status,
                                                  started_at, finished_at)
                    select r.id, 1, %(idx)s, %(kind)s || '-step', %(kind)s,
                           case when r.status = 'failed' and %(last)s then 'failed'
                                else 'succeeded' end,
                           r.claimed_at + (r.finished_at - r.claimed_at) * %(idx)s / %(n)s,
                           r.claimed_at + (r.finished_at - r.claimed_at) * (%(idx)s + 1) / %(n)s
                    from public.runs r where r.template = %(name)s
                    """,
                    {"idx": idx, "kind": kind, "name": name, "n": len(STEPS[name]),
                     "last": idx == len(STEPS[name]) - 1},
                )  # fmt: skip
        conn.execute("analyze public.runs")


@pytest.fixture
def sdk(db_url: str, tmp_path: Any) -> Iterator[Client]:
    with pulser_ops.connect(db_url, storage_dir=tmp_path / "files") as c:
        yield c


def test_the_performance_page_charts_a_day_of_runs(
    sdk: Client, base: str, page: Any, db_url: str
) -> None:
    _seed(db_url)
    page.goto(base + "/")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    page.keyboard.press("g")
    page.keyboard.press("p")  # the shortcut to the new tab
    expect(page).to_have_url(base + "/performance")
    expect(page.get_by_role("link", name="Performance")).to_have_attribute("aria-current", "page")
    expect(page.locator(".summary-line")).to_contain_text("1,604 runs finished")
    for name, *_ in HISTORY:
        expect(page.locator(f"#perf-{name}")).to_be_visible()
    charts = page.locator("svg.chart.pct")
    expect(charts).to_have_count(3)
    # every template's p50 dot is drawn, and steps of all four kinds
    expect(page.locator("section[aria-label='run duration'] .pct-p50")).to_have_count(4)
    expect(page.locator("section[aria-label='step duration'] .pct-p50")).to_have_count(4)
    bars = page.locator("svg.throughput-chart rect.spark-bar")
    assert bars.count() > 40  # 48 half-hour buckets, nearly all busy
    shot(page, "performance-day")
    page.get_by_role("link", name="last 7 days").click()
    expect(page).to_have_url(base + "/performance?period=week")
    page.locator("#theme-toggle").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    expect(page.locator("#perf-http-check")).to_be_visible()
    shot(page, "performance-week-dark")


def test_a_firing_alert_shows_on_the_runboard(
    sdk: Client, base: str, page: Any, db_url: str
) -> None:
    sdk.templates.upsert({"name": "nightly-export", "max_attempts": 2, "lease_seconds": 30})
    sdk.runs.create_many([{"template": "nightly-export", "lane": "D"} for _ in range(3)])
    [run] = sdk.runs.claim("worker-7f3a", lanes=["D"])
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "update public.runs set lease_expires_at = now() - interval '4 minutes',"
            " heartbeat_at = now() - interval '5 minutes' where id = %s", (str(run.id),))  # fmt: skip
    rules = Rules.model_validate({"rules": {"stuck_runs": {"after": 60}}}).sql()
    [notice] = sdk.alerts.evaluate(rules)
    page.goto(base + "/")
    banner = page.locator("#alerts-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("1 alert firing")
    expect(banner).to_contain_text("stuck_runs")
    expect(banner.locator(f"#alert-{notice.alert_id} a.mono")).to_have_text(str(run.id)[:8])
    shot(page, "board-alerts")
    sdk.runs.sweep()
    sdk.alerts.evaluate(rules)
    expect(banner).to_be_hidden(timeout=20_000)  # the next refresh (SSE or polling)
