"""The control room's monitoring pieces, on both transports: ``/metrics`` (the fleet's gauges
behind the board's sign-in), the Performance page and the alerts banner on the Runboard."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from pulser_ops import Client
from pulser_ops.alerts import Rules
from pulser_ops.web import WebConfig
from tests.contract.conftest import Env
from tests.contract.helpers import claimed, template

from .helpers import board

XSS = "<b>x</b>"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_serves_the_fleet_gauges(env: Env, client: Client) -> None:
    template(client)
    run = claimed(client, "w-1")
    env.sql("update public.runs set lease_expires_at = now() - interval '1 minute' where id = %s",
            (str(run.id),))  # fmt: skip
    client.runs.create_many([{"template": "hello", "params": {"name": "q"}, "lane": "B"}] * 2)
    async with board(env) as b:
        page = await b.get("/metrics")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain")
    got = _samples(page.text)
    assert got[("pulser_runs", (("lane", "B"), ("status", "queued"), ("template", "hello")))] == 2
    assert got[("pulser_runs", (("lane", "A"), ("status", "running"), ("template", "hello")))] == 1
    assert got[("pulser_runs_stuck", (("lane", "A"),))] == 1
    assert got[("pulser_queue_oldest_age_seconds", (("lane", "B"),))] >= 0
    assert got[("pulser_fleet_scrape_error", ())] == 0
    assert ("process_cpu_seconds_total", ()) in got or ("python_info", ()) in {
        (k[0], ()) for k in got}  # this server's own process metrics come along


async def test_metrics_needs_the_boards_credentials(env: Env) -> None:
    config = WebConfig(auth="local", token="scrape-token")
    async with board(env, config=config) as b:
        assert (await b.get("/metrics")).status_code == 401
        ok = await b.http.get("/metrics", headers={"Authorization": "Bearer scrape-token"})
        assert ok.status_code == 200 and "pulser_runs_stuck" in ok.text


async def test_performance_page_charts_each_template(env: Env, client: Client) -> None:
    template(client, max_attempts=1)
    template(client, "b-team", max_attempts=1)
    for _ in range(2):
        r = claimed(client, "w1")
        client.runs.complete_many("w1", [{
            "run_id": r.id, "attempt": 1, "status": "succeeded",
            "steps": [{"idx": 0, "name": "greet", "kind": "shell", "status": "succeeded"}]}])
    client.runs.create("b-team", {"name": XSS}, lane="C")
    [r] = client.runs.claim("w1", lanes=["C"])
    client.runs.complete(r.id, "w1", 1, "failed", error=XSS)
    async with board(env) as b:
        page = await b.get("/performance?period=hour")
        week = await b.get("/partials/performance?period=week")
        bogus = await b.get("/performance?period=<x>")
    assert page.status_code == 200
    html = page.text
    assert 'aria-current="page"' in html and "Performance" in html
    assert 'id="perf-hello"' in html and 'id="perf-b-team"' in html
    assert "3</strong> runs finished in the last hour" in html
    assert html.count('class="chart pct"') == 3 and 'class="chart throughput-chart"' in html
    assert re.search(r'id="perf-b-team">.*?<td class="bad">1</td>', html, re.S)
    assert week.status_code == 200 and "<html" not in week.text
    assert "last 7 days" in week.text
    assert bogus.status_code == 200 and "last 24 hours" in bogus.text  # unknown: the default
    assert 'id="perf-hello"' in week.text
    assert "<b>x</b>" not in html


async def test_firing_alerts_show_on_the_board(env: Env, client: Client) -> None:
    template(client)
    run = claimed(client, "w-gone")
    env.sql("update public.runs set lease_expires_at = now() - interval '5 minutes' where id = %s",
            (str(run.id),))  # fmt: skip
    rules = Rules.model_validate({"rules": {"stuck_runs": {"after": 0}}}).sql()
    async with board(env) as b:
        assert 'id="alerts-banner"' not in (await b.get("/")).text
        [notice] = client.alerts.evaluate(rules)
        b.room.reads.forget()
        html = (await b.get("/partials/board")).text
        assert 'id="alerts-banner"' in html and f'id="alert-{notice.alert_id}"' in html
        assert "critical" in html and "stuck_runs" in html and f"/runs/{run.id}" in html
        client.runs.sweep()
        client.alerts.evaluate(rules)
        b.room.reads.forget()
        assert 'id="alerts-banner"' not in (await b.get("/partials/board")).text
