"""The Content-Security-Policy and what it relies on: every page (issue 17's Performance page
and alert banner too) sends it, and no page carries inline script, inline event handlers or
style attributes that it would (rightly) block."""

from __future__ import annotations

import re

from pulser_ops import Client
from tests.contract.conftest import Env
from tests.contract.helpers import claimed, template

from .helpers import board


async def test_every_page_sends_the_policy_and_needs_no_inline_code(
    env: Env, client: Client
) -> None:
    template(client, max_attempts=2)
    run = claimed(client)
    client.events.log(run.id, "a <b>line</b>")
    client.artifacts.put(run.id, "notes.md", "# hi <script>x()</script>", attempt=1)
    client.artifacts.put(run.id, "out.json", '{"a": 1}', attempt=1)
    client.schedules.upsert({"name": "nightly", "template": "hello", "cron": "30 2 * * *",
                             "params": {"name": "n"}, "description": "<b>x</b>"})  # fmt: skip
    session = client.sessions.create("s")
    client.sessions.post(session.id, [{"kind": "command", "body": "help"}])
    pages = [
        "/", "/runs", f"/runs/{run.id}", "/workers", "/templates", "/templates/new",
        "/templates/hello", "/chat", f"/chat/{session.id}", f"/runs/{run.id}/artifacts/notes.md",
        f"/runs/{run.id}/artifacts/out.json",
        f"/diff?a={run.id}:1:notes.md&b={run.id}:1:out.json",
        "/performance", "/performance?period=week", "/performance?period=hour",
        "/schedules", "/schedules/new", "/schedules/nightly/edit",
        "/partials/schedules/preview?cron=61+*+*+*+*",
    ]  # fmt: skip
    # the board's alert banner (issue 17) is under the same policy
    env.sql("insert into public.alerts (rule, subject, severity, summary)"
            " values ('stuck_runs', 'B', 'critical', 'a <b>stuck</b> run')")
    async with board(env) as b:
        for path in pages:
            got = await b.get(path)
            assert got.status_code == 200, path
            csp = got.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "style-src 'self'" in csp
            assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
            assert got.headers["x-content-type-options"] == "nosniff"
            html = got.text
            if path == "/":
                assert 'id="alerts-banner"' in html and "a &lt;b&gt;stuck&lt;/b&gt; run" in html
            assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
            assert not re.search(r"\sstyle=\"", html), path
            assert not re.search(r"\son[a-z]+=\"", html), path
        static = await b.get("/static/app.js")
        assert "default-src 'self'" in static.headers["content-security-policy"]
