"""Pages and partials, on both transports: what an operator sees, escaped; what they may do,
checked (same origin, role); the filters, pages, counts, bulk actions and exports of the runs
list."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

from pulser_ops import Client
from pulser_ops.web import WebConfig
from tests.contract.conftest import Caller, Env
from tests.contract.helpers import claimed, new_id, template

from .helpers import board

XSS = "<script>alert('x')</script>"


def _no_raw_script(html: str) -> None:
    assert "<script>alert" not in html
    # Our own <script> tags carry src or are the theme bootstrap; no user text became one.


async def test_board_shows_lanes_running_cards_and_escapes_user_text(
    env: Env, client: Client
) -> None:
    template(client)
    run = client.runs.create("hello", {"name": XSS}, lane="B")
    [held] = client.runs.claim("w-1", lanes=["B"])
    client.events.log(held.id, f"step says {XSS}")
    client.runs.create("hello", {"name": "waiting"}, lane="A")
    async with board(env) as b:
        page = await b.get("/")
        assert page.status_code == 200
        html = page.text
        for lane in "ABCD":
            assert f'id="lane-{lane}"' in html
        assert f'id="card-{run.id}"' in html
        assert "w-1" in html
        assert "step says &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
        _no_raw_script(html)
        assert re.search(r'data-testid="queued-A"><a [^>]*>1</a>', html)
        assert re.search(r'data-testid="running-B"><a [^>]*>1</a>', html)
        partial = await b.get("/partials/board")
        assert partial.status_code == 200 and "<html" not in partial.text
        assert f'id="card-{run.id}"' in partial.text


async def test_stuck_runs_show_a_banner_with_links(env: Env, client: Client) -> None:
    template(client)
    run = claimed(client)
    env.sql(
        "update public.runs set lease_expires_at = now() - interval '5 seconds' where id = %s",
        (str(run.id),),
    )
    async with board(env) as b:
        html = (await b.get("/")).text
    assert 'id="stuck-banner"' in html and "1 stuck run" in html
    assert f"/runs/{run.id}" in html


async def test_run_detail_escapes_params_and_log_lines(env: Env, client: Client) -> None:
    template(client)
    run = client.runs.create("hello", {"name": XSS})
    client.runs.claim("w1", lanes=["A"])
    client.events.log(run.id, XSS, level="error")
    async with board(env) as b:
        page = await b.get(f"/runs/{run.id}")
    assert page.status_code == 200
    html = page.text
    _no_raw_script(html)
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html  # the log line
    assert "&#34;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&#34;" in html  # params JSON
    assert f"/runs/{run.id}/log?after=" in html  # a live log for a running run


async def test_unknown_run_is_a_404_page(env: Env) -> None:
    async with board(env) as b:
        assert (await b.get(f"/runs/{new_id()}")).status_code == 404
        assert (await b.get("/runs/not-a-uuid")).status_code == 404


async def test_runs_list_filters_pages_and_counts(env: Env, client: Client) -> None:
    template(client)
    template(client, "other")
    made = [client.runs.create("hello", {"name": f"n{i}"}, lane="A") for i in range(5)]
    client.runs.create("other", {"name": "needle-in-params"}, lane="C")
    async with board(env, config=WebConfig(page_size=2)) as b:
        first = await b.get("/runs?lane=A")
        assert first.status_code == 200
        assert "5 runs" in first.text and "matching lane=A" in first.text
        ids = re.findall(r'id="row-([0-9a-f-]{36})"', first.text)
        assert ids == [str(made[4].id), str(made[3].id)]
        nxt = re.search(r'href="([^"]+)" rel="next"', first.text)
        assert nxt is not None
        second = await b.get(nxt.group(1).replace("&amp;", "&"))
        assert re.findall(r'id="row-([0-9a-f-]{36})"', second.text) == [
            str(made[2].id),
            str(made[1].id),
        ]
        found = await b.get("/runs?q=needle")
        assert re.findall(r'id="row-([0-9a-f-]{36})"', found.text) != []
        assert re.search(r"1 run\s+matching q=needle", found.text)
        none = await b.get("/runs?template=other&lane=A")
        assert "No runs match." in none.text
        bad = await b.get("/runs?status=bogus&from=yesterday")
        assert bad.status_code == 200
        assert "status: unknown value" in bad.text and "from: not a date" in bad.text


async def test_a_sub_second_run_shows_how_long_it_took_in_milliseconds(
    env: Env, client: Client
) -> None:
    """A run that took 0.4 s read "0s" in the runs list and the run page: "took" is a measured
    time (milliseconds below a second), unlike an age."""
    template(client)
    run = client.runs.create("hello", {"name": "quick"}, lane="A")
    env.sql(
        "update public.runs set created_at = now() - interval '420 milliseconds' where id = %s",
        (str(run.id),),
    )
    [held] = client.runs.claim("w-1", lanes=["A"])
    client.runs.complete(held.id, "w-1", held.attempt, "succeeded")
    async with board(env) as b:
        listed = (await b.get("/runs")).text
        row = re.search(rf'id="row-{run.id}".*?</tr>', listed, re.S)
        assert row is not None
        assert re.search(r"<td>\d{3} ms</td>", row.group(0)), row.group(0)
        detail = (await b.get(f"/runs/{run.id}")).text
        assert re.search(r"<dt>took</dt><dd>\d{3} ms</dd>", detail)


async def test_export_streams_the_filtered_list(env: Env, client: Client) -> None:
    template(client)
    runs = [client.runs.create("hello", {"name": f"n{i}"}, lane="B") for i in range(3)]
    client.runs.create("hello", {"name": "elsewhere"}, lane="D")
    async with board(env) as b:
        got = await b.get("/runs/export.csv?lane=B")
        assert got.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(got.text)))
        assert sorted(r["id"] for r in rows) == sorted(str(r.id) for r in runs)
        assert json.loads(rows[0]["params"])["name"].startswith("n")
        as_json = (await b.get("/runs/export.json?lane=B")).json()
        assert sorted(r["id"] for r in as_json) == sorted(str(r.id) for r in runs)


async def test_cancel_needs_same_origin_and_a_role_that_may_act(env: Env, client: Client) -> None:
    template(client)
    run = client.runs.create("hello", {"name": "x"})
    async with board(env) as b:
        cross = await b.post(f"/runs/{run.id}/cancel", headers={"Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403
        other = await b.http.post(f"/runs/{run.id}/cancel", headers={"Origin": "http://evil.test"})
        assert other.status_code == 403
        assert client.runs.get(run.id).status == "queued"
    async with board(env, config=WebConfig(read_only=True)) as b:
        assert (await b.post(f"/runs/{run.id}/cancel")).status_code == 403
        assert 'id="cancel-run"' not in (await b.get(f"/runs/{run.id}")).text
        assert client.runs.get(run.id).status == "queued"
    async with board(env) as b:
        ok = await b.post(f"/runs/{run.id}/cancel")
        assert ok.status_code == 200
    assert client.runs.get(run.id).status == "cancelled"


async def test_bulk_cancel_by_filter_previews_then_acts_within_the_cap(
    env: Env, client: Client
) -> None:
    template(client)
    target = [client.runs.create("hello", {"name": f"t{i}"}, lane="C") for i in range(3)]
    keep = client.runs.create("hello", {"name": "keep"}, lane="A")
    form = {"action": "cancel", "scope": "filter", "lane": "C"}
    async with board(env, config=WebConfig(bulk_cap=2)) as b:
        preview = await b.post("/runs/bulk/preview", data=form)
        assert preview.status_code == 200
        assert "Cancel 3 runs matching" in preview.text and "lane=C" in preview.text
        assert "newest 2" in preview.text
        assert all(client.runs.get(r.id).status == "queued" for r in target)  # a preview only
        done = await b.post("/runs/bulk", data=form)
        assert done.status_code == 200 and "Cancelled 2 runs" in done.text
    statuses = sorted(client.runs.get(r.id).status for r in target)
    assert statuses == ["cancelled", "cancelled", "queued"]
    assert client.runs.get(target[0].id).status == "queued"  # the oldest: over the cap
    assert client.runs.get(keep.id).status == "queued"


async def test_bulk_rerun_of_selected_failed_runs(env: Env, client: Client) -> None:
    template(client, max_attempts=1)
    run = claimed(client)
    client.runs.complete(run.id, "w1", 1, "failed", error="boom", retryable=False)
    async with board(env) as b:
        form = {"action": "rerun", "scope": "selected", "ids": [str(run.id)]}
        preview = await b.post("/runs/bulk/preview", data=form)
        assert "Re-enqueue 1 of the 1 selected run" in preview.text
        done = await b.post("/runs/bulk", data=form)
        assert "Re-enqueued 1 run" in done.text
    fresh = [r for r in client.runs.list() if r.id != run.id]
    assert len(fresh) == 1 and fresh[0].params == run.params and fresh[0].status == "queued"


async def test_a_waiting_run_says_when_it_is_due_and_can_be_run_now(
    env: Env, client: Client
) -> None:
    template(client)
    later = datetime.now(UTC) + timedelta(minutes=90)
    run = client.runs.create("hello", {"name": "later"}, lane="B", run_after=later)
    due = client.runs.create("hello", {"name": "due"}, lane="B")
    async with board(env, config=WebConfig(read_only=True)) as b:
        html = (await b.get(f"/runs/{run.id}")).text
        assert re.search(r'id="due">in 1h 29m', html) and 'id="run-now"' not in html
        assert (await b.post(f"/runs/{run.id}/run-now")).status_code == 403
    async with board(env) as b:
        assert 'id="run-now"' not in (await b.get(f"/runs/{due.id}")).text  # nothing to hurry
        page = (await b.get(f"/runs/{run.id}")).text
        assert 'id="run-now"' in page and "not to be claimed before this" in page
        cross = await b.post(f"/runs/{run.id}/run-now", headers={"Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403
        assert client.runs.get(run.id).available_at > datetime.now(UTC)
        ok = await b.post(f"/runs/{run.id}/run-now")
        assert ok.status_code == 200 and 'id="run-now"' not in ok.text and 'id="due"' not in ok.text
        assert client.runs.get(run.id).available_at <= datetime.now(UTC)
        timeline = (await b.get(f"/runs/{run.id}")).text
        assert "moved to now by" in timeline


async def test_bulk_run_now_of_everything_waiting_in_a_lane(env: Env, client: Client) -> None:
    template(client)
    later = datetime.now(UTC) + timedelta(hours=1)
    waiting = [client.runs.create("hello", {"name": f"w{i}"}, lane="C", run_after=later)
               for i in range(2)]  # fmt: skip
    client.runs.create("hello", {"name": "due"}, lane="C")
    form = {"action": "run_now", "scope": "filter", "lane": "C"}
    async with board(env) as b:
        page = (await b.get("/runs")).text
        assert 'value="run_now"' in page
        preview = await b.post("/runs/bulk/preview", data=form)
        assert "Run now 2 runs matching" in preview.text and "still waiting" in preview.text
        done = await b.post("/runs/bulk", data=form)
        assert "Moved to now 2 runs" in done.text
    assert all(client.runs.get(r.id).available_at <= datetime.now(UTC) for r in waiting)


async def test_rerun_with_edited_params_is_checked_against_the_schema(
    env: Env, client: Client
) -> None:
    template(client)
    run = client.runs.create("hello", {"name": "first"})
    async with board(env) as b:
        bad = await b.post(f"/runs/{run.id}/rerun", data={"params": '{"name": ""}', "lane": "B"})
        assert bad.status_code == 422 and "invalid_params" in bad.text
        junk = await b.post(f"/runs/{run.id}/rerun", data={"params": "[1,"})
        assert junk.status_code == 422 and "not JSON" in junk.text
        ok = await b.post(
            f"/runs/{run.id}/rerun", data={"params": '{"name": "second"}', "lane": "B"}
        )
        assert ok.status_code == 204
        new_id_ = ok.headers["HX-Redirect"].rsplit("/", 1)[1]
    fresh = client.runs.get(new_id_)
    assert fresh.params == {"name": "second", "count": 1} and fresh.lane == "B"
    assert any(e.kind == "rerun_of" for e in client.events.list(fresh.id))


async def test_an_operator_sees_only_their_own_runs(env: Env, client: Client) -> None:
    template(client)
    me, them = Caller("operator", new_id()), Caller("operator", new_id())
    with env.client(me) as mine_c, env.client(them) as theirs_c:
        mine = mine_c.runs.create("hello", {"name": "mine"}, lane="A")
        theirs = theirs_c.runs.create("hello", {"name": "theirs"}, lane="A")
    async with board(env, me) as b:
        listed = (await b.get("/runs")).text
        assert str(mine.id) in listed and str(theirs.id) not in listed
        page = await b.get("/")
        assert re.search(r'data-testid="queued-A"><a [^>]*>1</a>', page.text)
        assert (await b.get(f"/runs/{theirs.id}")).status_code == 404
        await b.post("/runs/bulk", data={"action": "cancel", "scope": "filter"})
    assert client.runs.get(theirs.id).status == "queued"
    assert client.runs.get(mine.id).status == "cancelled"


async def test_lane_controls_are_for_admins(env: Env, client: Client) -> None:
    async with board(env) as b:
        assert 'value="pause"' in (await b.get("/")).text
        got = await b.post("/lanes/B", data={"action": "pause"})
        assert got.status_code == 200 and "paused" in got.text
        assert (
            await b.post("/lanes/B", data={"action": "cap", "max_running": "3"})
        ).status_code == 200
    lane = {x.id: x for x in client.lanes.list()}["B"]
    assert lane.paused and lane.max_running == 3
    async with board(env, config=WebConfig(read_only=True)) as b:
        assert 'value="pause"' not in (await b.get("/")).text
        assert (await b.post("/lanes/B", data={"action": "resume"})).status_code == 403
    assert {x.id: x for x in client.lanes.list()}["B"].paused


async def test_workers_page_shows_stale_workers_with_their_runs(env: Env, client: Client) -> None:
    template(client)
    client.workers.register("alive-1", host="h1", lanes=["A"], version="1.2", concurrency=4)
    client.workers.register("gone-1", host="h2", lanes=["A", "B"])
    run = claimed(client, "gone-1")
    env.sql(
        "update public.workers set last_seen_at = now() - interval '5 minutes' where id = 'gone-1'"
    )
    async with board(env) as b:
        html = (await b.get("/workers")).text
    assert 'id="worker-alive-1"' in html and "1.2" in html
    row = html[html.index('id="worker-gone-1"') :]
    assert "stale" in row[:2000] and str(run.id)[:8] in row[:3000]
    # Where each held run's lease stands (the sweeper takes it once expired), not a blanket
    # "once their leases expire" for a lease that expired long ago.
    assert re.search(r"\(hello, lease ends in \d+s\)", row[:3000])
    env.sql(
        "update public.runs set lease_expires_at = now() - interval '2 minutes' where id = %s",
        (str(run.id),),
    )
    async with board(env) as b:
        html = (await b.get("/workers")).text
    row = html[html.index('id="worker-gone-1"') :]
    assert re.search(r"\(hello, lease expired 2m 0\ds ago\)", row[:3000])
