"""The second part of the room in front of a Supabase project (the stand-in, a test fixture),
with operators signed in through Supabase Auth, each call carrying their own JWT: templates are
read-only for operators, runs and chats are their own, and artifact downloads are short-lived
signed Storage URLs that the bucket's policy grants only for their runs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

import pulser_ops
from pulser_ops.web import ControlRoom, WebConfig, create_app
from tests.contract.helpers import SCHEMA, fetch
from tests.standin import StandIn
from tests.web.helpers import SAME_ORIGIN

SECRET = "web-auth-suite-jwt-secret-with-at-least-32-bytes"


@pytest.fixture
def sb(db_url: str, tmp_path: Path) -> Iterator[StandIn]:
    with StandIn(db_url, SECRET, tmp_path / "storage") as project:
        yield project


@asynccontextmanager
async def signed_in(sb: StandIn, email: str, password: str) -> AsyncIterator[httpx.AsyncClient]:
    config = WebConfig(auth="supabase", supabase_url=sb.url, supabase_key=sb.anon_key)
    room = ControlRoom(config=config)
    app = create_app(room=room)
    async with room:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://board") as http:
            got = await http.post("/login", data={"email": email, "password": password},
                                  headers=SAME_ORIGIN)  # fmt: skip
            assert got.status_code == 303, got.text
            http.headers.update(SAME_ORIGIN)
            yield http


async def test_operators_run_but_never_edit_and_see_only_their_own(sb: StandIn) -> None:
    alice = sb.add_user("alice@example.com", "alice-pw")
    sb.add_user("bob@example.com", "bob-pw")
    with pulser_ops.connect(supabase_url=sb.url, supabase_key=sb.service_key) as svc:
        svc.templates.upsert({"name": "hello", "params_schema": SCHEMA, "default_lane": "B",
                              "steps": [{"kind": "shell", "name": "x", "command": "true"}]})  # fmt: skip
    with pulser_ops.connect(supabase_url=sb.url, supabase_key=sb.service_key) as svc:
        before = svc.templates.list()
    async with signed_in(sb, "alice@example.com", "alice-pw") as http:
        page = (await http.get("/templates/hello")).text
        assert '<fieldset disabled class="editor">' in page and 'id="run-form"' in page
        assert 'id="new-template"' not in (await http.get("/templates")).text
        refused = await http.post("/templates/save", data={"name": "hello", "steps": ""})
        assert refused.status_code == 403 and "only an admin may change templates" in refused.text
        assert (await http.post("/templates/hello/delete")).status_code == 403
        ran = await http.post("/templates/hello/run", data={"p.name": "alice"})
        assert ran.status_code == 204
        run_id = ran.headers["HX-Redirect"].rsplit("/", 1)[1]
        session = (await http.post("/chat/sessions", data={"title": "alice's"})).headers["location"]
        said = await http.post(f"{session}/send", data={"text": "run hello name=chatted"})
        assert "started hello as run" in said.text
    with pulser_ops.connect(supabase_url=sb.url, supabase_key=sb.service_key) as svc:
        assert svc.templates.list() == before
        mine = {r.params["name"]: r for r in svc.runs.list()}
        assert {str(r.owner_id) for r in mine.values()} == {alice}
        run = svc.runs.get(run_id)
        held, _ = svc.runs.claim("w-1", lanes=["B"], limit=2)
        big = b"artifact bytes " * 5000
        svc.artifacts.put(held.id, "out.bin", big, attempt=held.attempt)
    async with signed_in(sb, "alice@example.com", "alice-pw") as http:
        download = await http.get(f"/runs/{held.id}/raw/out.bin?attempt=1&download=1")
        assert download.status_code == 303
        assert fetch(download.headers["location"]) == big  # signed with alice's JWT
        assert "run-artifacts" in download.headers["location"]
    async with signed_in(sb, "bob@example.com", "bob-pw") as http:
        assert (await http.get(f"/runs/{held.id}/raw/out.bin?attempt=1&download=1")).status_code \
            == 404
        assert (await http.get(f"/runs/{held.id}/artifacts/out.bin?attempt=1")).status_code == 404
        assert (await http.get(session)).status_code == 404
        assert (await http.post(f"{session}/send", data={"text": "status"})).status_code == 404
        assert (await http.post(f"/runs/{run.id}/cancel")).status_code == 404  # not theirs: unknown
    with pulser_ops.connect(supabase_url=sb.url, supabase_key=sb.service_key) as svc:
        assert svc.runs.get(run.id).status == "running"  # claimed above; bob changed nothing


async def test_operators_read_schedules_but_only_admins_change_them(sb: StandIn) -> None:
    sb.add_user("alice@example.com", "alice-pw")
    sb.add_user("root@example.com", "root-pw", app_metadata={"ops_role": "admin"})
    with pulser_ops.connect(supabase_url=sb.url, supabase_key=sb.service_key) as svc:
        svc.templates.upsert({"name": "hello", "params_schema": SCHEMA, "default_lane": "B",
                              "steps": [{"kind": "shell", "name": "x", "command": "true"}]})  # fmt: skip
        svc.schedules.upsert({"name": "nightly", "template": "hello", "cron": "30 2 * * *",
                              "timezone": "Europe/Paris", "params": {"name": "n"}})  # fmt: skip
        before = svc.schedules.list()
    form = {"existing": "nightly", "name": "nightly", "template": "hello", "cron": "@hourly",
            "timezone": "UTC", "params": '{"name": "n"}', "enabled": "on"}  # fmt: skip
    async with signed_in(sb, "alice@example.com", "alice-pw") as http:
        html = (await http.get("/schedules")).text
        assert 'id="schedule-nightly"' in html and "every day at 02:30" in html
        assert 'id="new-schedule"' not in html and 'class="pause"' not in html
        page = (await http.get("/schedules/nightly/edit")).text
        assert '<fieldset disabled class="editor">' in page and 'id="save-schedule"' not in page
        preview = await http.get("/partials/schedules/preview", params={"cron": "@daily"})
        assert preview.status_code == 200 and 'id="preview-times"' in preview.text
        for path in ("/schedules/nightly/pause", "/schedules/nightly/delete", "/schedules/save"):
            refused = await http.post(path, data=form)
            assert refused.status_code == 403, path
            assert "only an admin may" in refused.text and "schedules" in refused.text
    async with signed_in(sb, "root@example.com", "root-pw") as http:
        assert 'id="new-schedule"' in (await http.get("/schedules")).text
        saved = await http.post("/schedules/save", data=form)
        assert saved.status_code == 303, saved.text
    with pulser_ops.connect(supabase_url=sb.url, supabase_key=sb.service_key) as svc:
        [after] = svc.schedules.list()
    assert before[0].cron == "30 2 * * *" and after.cron == "@hourly"
