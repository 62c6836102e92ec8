"""The Schedules tab through the app, on both transports: the list (next run, last run with
its status, the last error), the editor's live preview of the next times (the control plane's
own cron reading, with its errors), saving with each refusal next to its field, pause, resume
and delete, who may do what (same origin, read-only, operators), and the run timeline naming
the schedule that enqueued a run."""

from __future__ import annotations

import re
from datetime import UTC
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest

from pulser_ops import Client
from pulser_ops.web import WebConfig
from tests.contract.conftest import Caller, Env
from tests.contract.helpers import new_id, template

from .helpers import board, error_slot

NIGHTLY = {"name": "nightly", "template": "hello", "cron": "30 2 * * *",
           "timezone": "Europe/Paris", "params": {"name": "night"}, "lane": "C", "priority": 7,
           "description": "the nightly hello"}  # fmt: skip
XSS = '<script>alert("x")</script>'
CROSS_SITE = {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}


def _form(**over: Any) -> dict[str, Any]:
    form = {"name": "nightly", "template": "hello", "cron": "30 2 * * *",
            "timezone": "Europe/Paris", "lane": "C", "priority": "7",
            "params": '{"name": "night"}', "enabled": "on",
            "description": "the nightly hello"}  # fmt: skip
    form.update(over)
    return {k: v for k, v in form.items() if v is not None}


def _row(html: str, name: str) -> str:
    start = html.index(f'id="schedule-{name}"')
    return html[start : html.index("</tr>", start)]


def _fire(env: Env, client: Client, name: str) -> Any:
    """Make ``name`` due a minute ago and let the sweeper's call fire it."""
    env.sql("update public.run_schedules set next_run_at = now() - interval '1 minute'"
            " where name = %s", (name,))  # fmt: skip
    [fired] = [f for f in client.schedules.enqueue_due() if f.schedule == name]
    return fired


async def test_the_list_shows_next_run_last_run_with_its_status_and_the_last_error(
    env: Env, client: Client
) -> None:
    template(client)
    template(client, "strict")
    client.schedules.upsert(NIGHTLY)
    client.schedules.upsert({"name": "hourly-crawl", "template": "hello", "cron": "@hourly",
                             "params": {"name": "crawl"}, "enabled": False})  # fmt: skip
    client.schedules.upsert({"name": "strict-one", "template": "strict", "cron": "*/15 * * * *",
                             "params": {"name": "x"}})  # fmt: skip
    fired = _fire(env, client, "nightly")
    # the template changed under the schedule: its params no longer fit, its next due time fails
    template(client, "strict", params_schema={
        "type": "object", "required": ["size"], "properties": {"size": {"type": "integer"}}})  # fmt: skip
    failed = _fire(env, client, "strict-one")
    assert fired.run_id is not None and failed.run_id is None and failed.error
    async with board(env) as b:
        html = (await b.get("/schedules")).text
        partial = (await b.get("/partials/schedules")).text
    assert 'aria-current="page"' in html and 'title="Schedules (g s)"' in html
    assert "<dt><kbd>g</kbd> <kbd>s</kbd></dt><dd>Schedules</dd>" in html  # the shortcuts' help
    assert 'data-schedules="/schedules"' in html  # where app.js's g s goes
    assert 'hx-get="/partials/schedules" hx-trigger="ops-refresh from:body"' in html
    nightly = _row(html, "nightly")
    assert '<a href="/templates/hello">hello</a>' in nightly and "lane C" in nightly
    assert '<code class="cron">30 2 * * *</code>' in nightly and "every day at 02:30" in nightly
    assert "<td>Europe/Paris</td>" in nightly
    # the next run counts down in the browser, and reads on the zone's wall clock and in UTC
    [s] = [x for x in client.schedules.list() if x.name == "nightly"]
    assert s.next_run_at is not None
    paris = s.next_run_at.astimezone(ZoneInfo("Europe/Paris")).strftime("%a %Y-%m-%d 02:30")
    assert f'data-until="{s.next_run_at.timestamp()}"' in nightly
    utc = s.next_run_at.astimezone(UTC).strftime("%a %Y-%m-%d %H:%M")
    assert f'<span title="on the wall clock of Europe/Paris">{paris}</span>' in nightly
    assert f"<span>{utc} UTC</span>" in nightly
    assert f'<a class="mono" href="/runs/{fired.run_id}">' in nightly
    assert '<span class="badge st-queued">queued</span>' in nightly
    assert '<span class="badge st-succeeded">enabled</span>' in nightly
    hourly = _row(html, "hourly-crawl")
    assert '<span class="badge paused-badge">paused</span>' in hourly and "never yet" in hourly
    assert "every hour, on the hour" in hourly and 'class="resume"' in hourly
    strict = _row(html, "strict-one")
    assert '<span class="badge st-failed"' in strict and "every 15 minutes" in strict
    error = html[html.index('id="schedule-error-strict-one"'):]
    assert "enqueued nothing" in error and "invalid params for template strict" in error
    assert 'hx-confirm="Delete schedule nightly?' in html and 'id="new-schedule"' in html
    assert '<table class="runs schedules" id="schedules-table">' in partial and "<html" not in partial
    assert 'id="flash" hidden>' in html and 'id="flash"' not in partial  # nothing was just done


async def test_a_description_and_last_error_are_shown_as_text(env: Env, client: Client) -> None:
    template(client)
    client.schedules.upsert({**NIGHTLY, "description": f"nightly {XSS}"})
    env.sql("update public.run_schedules set last_error = %s, last_run_at = now()"
            " where name = 'nightly'", (f"boom {XSS}",))  # fmt: skip
    async with board(env) as b:
        pages = [(await b.get(p)).text for p in ("/schedules", "/schedules/nightly/edit")]
    for html in pages:
        assert "<script>alert" not in html
        assert "boom &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
        assert "nightly &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


async def test_the_preview_shows_the_next_times_in_the_zone_and_utc_or_the_error(
    env: Env, client: Client
) -> None:
    async with board(env) as b:
        got = await b.get("/partials/schedules/preview",
                          params={"cron": "30 2 * * *", "timezone": "Europe/Paris"})  # fmt: skip
        html = got.text
        expected = client.schedules.preview("30 2 * * *", "Europe/Paris", 5)
        assert got.status_code == 200 and "<html" not in html
        assert "every day at 02:30" in html and "(Europe/Paris)" in html
        rows = re.findall(r'<tr><td class="mono">(.*?)</td><td class="mono muted">(.*?)</td>', html)
        assert rows == [(t.local_time, t.due_at.astimezone(UTC).strftime("%a %Y-%m-%d %H:%M"))
                        for t in expected]  # fmt: skip
        assert all(local.endswith(" 02:30") for local, _ in rows) and len(rows) == 5
        utc = (await b.get("/partials/schedules/preview", params={"cron": "@hourly"})).text
        assert "<th>UTC</th><th></th>" in utc and utc.count("data-until=") == 5
        cases = {
            ("61 * * * *", "UTC"): 'cron: the minute field allows 0 to 59 (got &#34;61&#34;)',
            ("* * *", "UTC"): "cron: expected 5 fields",
            ("0 0 30 2 *", "UTC"): "names no time that exists",
            ("30 2 * * *", "Mars/Olympus"): 'timezone: unknown time zone &#34;Mars/Olympus&#34;',
            ("", "UTC"): "cron: type an expression",
            (XSS, "UTC"): "&lt;script&gt;",
        }
        for (cron, tz), message in cases.items():
            bad = await b.get("/partials/schedules/preview", params={"cron": cron, "timezone": tz})
            assert bad.status_code == 200 and 'id="preview-error"' in bad.text, cron
            assert message in bad.text and "preview-times" not in bad.text, cron
            assert "<script>" not in bad.text


async def test_save_a_new_schedule_then_edit_it(env: Env, client: Client) -> None:
    template(client)
    async with board(env) as b:
        new = (await b.get("/schedules/new?template=hello")).text
        assert '<option value="hello" selected>hello (lane A)</option>' in new
        assert 'id="cron-preview"' in new and 'id="preview-times"' in new  # the default's times
        assert '<option value="Europe/Paris">' in new and 'list="zones"' in new
        saved = await b.post("/schedules/save", data=_form())
        assert saved.status_code == 303
        assert saved.headers["location"] == "/schedules?m=" + quote("saved nightly")
        [s] = client.schedules.list()
        assert (s.name, s.template, s.cron, s.timezone, s.lane, s.priority, s.params, s.enabled,
                s.description) == ("nightly", "hello", "30 2 * * *", "Europe/Paris", "C", 7,
                                   {"name": "night"}, True, "the nightly hello")  # fmt: skip
        listed = (await b.get(saved.headers["location"])).text
        assert 'id="flash">saved nightly<' in listed
        page = (await b.get("/schedules/nightly/edit")).text
        assert 'name="existing" value="nightly"' in page and 'id="s-name" name="name" value="nightly"' in page
        assert "&#34;name&#34;: &#34;night&#34;" in page and 'id="schedule-facts"' in page
        # an edit: the template's lane, paused, new params
        edited = await b.post("/schedules/save", data=_form(
            existing="nightly", lane="", enabled=None, params='{"name": "late", "count": 2}'))  # fmt: skip
        assert edited.status_code == 303 and "paused" in edited.headers["location"]
        [s] = client.schedules.list()
        assert (s.lane, s.enabled, s.params) == (None, False, {"name": "late", "count": 2})
        # a new schedule by a name that exists replaces nothing
        before = env.state()
        again = await b.post("/schedules/save", data=_form(description="another"))
        assert again.status_code == 422 and "exists already" in error_slot(again.text, "name")
        assert env.state() == before


@pytest.mark.parametrize(
    ("over", "slot", "message"),
    [
        ({"params": '{"name": '}, "params", "params: not valid JSON"),
        ({"params": '{"name": ""}'}, "params", "invalid params for template hello"),
        ({"params": "[1, 2]"}, "params", "schedule.params: expected an object"),
        ({"cron": "61 * * * *"}, "cron", "the minute field allows 0 to 59"),
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
        ({"priority": "soon"}, "priority", "schedule.priority: a whole number"),
        ({"priority": "1.5"}, "priority", "schedule.priority: a whole number"),
        ({"priority": "nan"}, "priority", "schedule.priority: a whole number"),
        ({"name": "Bad Name"}, "name", "schedule.name: required, lowercase"),
        ({"template": "nope"}, "template", "unknown template nope"),
        ({"description": "x" * 2001}, "description", "schedule.description"),
    ],
)
async def test_a_refused_save_names_the_field_and_saves_nothing(
    env: Env, client: Client, over: dict[str, str], slot: str, message: str
) -> None:
    template(client)
    before = env.state()
    async with board(env) as b:
        got = await b.post("/schedules/save", data=_form(**over))
    assert got.status_code == 422 and 'id="not-saved"' in got.text
    assert message in error_slot(got.text, slot)
    assert f'value="{over.get("name", "nightly")}"' in got.text  # what was typed stays
    assert env.state() == before


async def test_pause_resume_and_delete_from_the_list_and_the_editor(
    env: Env, client: Client
) -> None:
    template(client)
    client.schedules.upsert(NIGHTLY)
    client.schedules.upsert({**NIGHTLY, "name": "other"})
    hx = {"HX-Request": "true", "HX-Target": "schedules"}
    async with board(env) as b:
        paused = await b.post("/schedules/nightly/pause", headers=hx)
        assert paused.status_code == 200 and 'id="flash" hx-swap-oob="true">paused nightly<' in paused.text
        assert '<span class="badge paused-badge">paused</span>' in _row(paused.text, "nightly")
        assert not {s.name: s for s in client.schedules.list()}["nightly"].enabled
        resumed = await b.post("/schedules/nightly/resume", headers=hx)
        assert "resumed nightly" in resumed.text and 'class="pause"' in _row(resumed.text, "nightly")
        assert {s.name: s for s in client.schedules.list()}["nightly"].enabled
        gone = await b.post("/schedules/nightly/delete", headers=hx)
        assert "deleted nightly" in gone.text and 'id="schedule-nightly"' not in gone.text
        # from the editor: back to the list
        page = (await b.get("/schedules/other/edit")).text
        assert 'id="delete-schedule"' in page and 'hx-confirm="Delete schedule other?' in page
        left = await b.post("/schedules/other/delete", headers={"HX-Request": "true"})
        assert left.status_code == 204
        assert left.headers["HX-Redirect"] == "/schedules?m=" + quote("deleted other")
        missing = await b.post("/schedules/other/pause", headers=hx)
        assert missing.status_code == 404 and "schedule other not found" in missing.text
        assert (await b.get("/schedules/other/edit")).status_code == 404
    assert client.schedules.list() == []


async def test_a_state_change_from_another_site_is_refused(env: Env, client: Client) -> None:
    template(client)
    client.schedules.upsert({**NIGHTLY, "enabled": False})
    before = env.state()
    async with board(env) as b:
        for path, data in (("/schedules/nightly/pause", None), ("/schedules/nightly/resume", None),
                           ("/schedules/nightly/delete", None),
                           ("/schedules/save", _form(name="evil"))):  # fmt: skip
            got = await b.post(path, data=data, headers=CROSS_SITE)
            assert got.status_code == 403 and "cross-site request refused" in got.text, path
            origin = await b.http.post(path, data=data, headers={"Origin": "https://evil.example"})
            assert origin.status_code == 403 and "cross-origin request refused" in origin.text
    assert env.state() == before


async def test_read_only_and_operators_see_no_controls_and_cannot_write(
    env: Env, client: Client
) -> None:
    template(client)
    client.schedules.upsert(NIGHTLY)
    before = env.state()
    async with board(env, config=WebConfig(read_only=True)) as b:
        html = (await b.get("/schedules")).text
        assert 'id="schedule-nightly"' in html and "every day at 02:30" in html
        for control in ('id="new-schedule"', 'class="pause"', 'class="danger delete"', ">Edit<"):
            assert control not in html, control
        page = (await b.get("/schedules/nightly/edit")).text
        assert '<fieldset disabled class="editor">' in page and 'id="read-only-note"' in page
        assert 'id="save-schedule"' not in page and 'id="delete-schedule"' not in page
        assert 'id="preview-times"' in page  # reading the times is for everyone
        for path in ("/schedules/nightly/pause", "/schedules/nightly/delete", "/schedules/save"):
            got = await b.post(path, data=_form(description="changed"))
            assert got.status_code == 403 and "only an admin may" in got.text, path
    # an operator's credentials: the room shows it to whoever it serves, the SQL refuses
    async with board(env, Caller("operator", new_id())) as b:
        assert 'id="schedule-nightly"' in (await b.get("/schedules")).text
        for path in ("/schedules/nightly/pause", "/schedules/nightly/delete", "/schedules/save"):
            got = await b.post(path, data=_form(existing="nightly", description="changed"))
            assert got.status_code == 403 and "permission_denied" in got.text, path
    assert env.state() == before


async def test_the_run_timeline_names_the_schedule_that_enqueued_it(
    env: Env, client: Client
) -> None:
    template(client)
    client.schedules.upsert(NIGHTLY)
    fired = _fire(env, client, "nightly")
    run = client.runs.get(fired.run_id)
    assert run.idempotency_key == "schedule:nightly:" + fired.due_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    # the due time's date is shown only when the run was enqueued on another day (UTC)
    same_day = fired.due_at.astimezone(UTC).date() == run.created_at.astimezone(UTC).date()
    due = fired.due_at.astimezone(UTC).strftime("%H:%M UTC" if same_day else "%Y-%m-%d %H:%M UTC")
    by_hand = client.runs.create("hello", {"name": "x"}, idempotency_key="schedule:nightly:soon")
    async with board(env) as b:
        page = (await b.get(f"/runs/{fired.run_id}")).text
        again = (await b.get(f"/partials/runs/{fired.run_id}/timeline")).text
        plain = (await b.get(f"/runs/{by_hand.id}")).text
    for html in (page, again):
        assert ('enqueued by schedule <a class="mono" href="/schedules#schedule-nightly"'
                ' id="by-schedule">nightly</a>'
                f" (due {due}) on lane C (template hello v1)") in html  # fmt: skip
    assert "enqueued on lane A (template hello v1)" in plain and "by-schedule" not in plain
