"""In front of a Supabase project (the stand-in, a test fixture): operators sign in with
Supabase Auth, the session lives in an HttpOnly SameSite cookie and is refreshed before it
expires, and every call carries the operator's own JWT, so RLS shows each only their runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

import pulser_ops
from pulser_ops.web import WebConfig, create_app
from tests.contract.helpers import SCHEMA
from tests.standin import StandIn

from .harness import serve, shot

SECRET = "browser-suite-jwt-secret-with-at-least-32-bytes"


@pytest.fixture
def project(db_url: str, tmp_path: Path) -> Iterator[StandIn]:
    with StandIn(db_url, SECRET, tmp_path / "storage") as sb:
        yield sb


def test_an_operator_signs_in_and_sees_only_their_own_runs(
    project: StandIn, page: Any, tmp_path: Path
) -> None:
    sb = project
    alice = sb.add_user("alice@example.com", "alice-pw")
    bob = sb.add_user("bob@example.com", "bob-pw")
    with pulser_ops.connect(supabase_url=sb.url, supabase_key=sb.service_key) as svc:
        svc.templates.upsert({"name": "hello", "params_schema": SCHEMA,
                              "steps": [{"kind": "shell", "name": "x", "run": "echo"}]})  # fmt: skip
    runs = {}
    for who, sub in (("alice", alice), ("bob", bob)):
        token = sb.user_token(sub)
        with pulser_ops.connect(supabase_url=sb.url, supabase_key=sb.anon_key,
                                access_token=token) as c:  # fmt: skip
            runs[who] = c.runs.create("hello", {"name": f"{who}'s run"}, lane="A")
    sb.app.gotrue.access_ttl_seconds = 30  # shorter than the refresh margin: every visit refreshes
    config = WebConfig(auth="supabase", supabase_url=sb.url, supabase_key=sb.anon_key)
    with serve(create_app(config=config)) as base:
        page.goto(base + "/runs")
        expect(page).to_have_url(base + "/login?next=/runs")
        page.get_by_label("Email").fill("alice@example.com")
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("sign-in refused")
        shot(page, "supabase-sign-in-refused")
        page.get_by_label("Email").fill("alice@example.com")
        page.get_by_label("Password").fill("alice-pw")
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(base + "/runs")
        table = page.locator("table.runs")
        expect(table).to_contain_text("alice's run")
        expect(table).not_to_contain_text("bob's run")
        expect(page.locator("header .who")).to_contain_text("alice@example.com · operator")
        cookie = next(c for c in page.context.cookies() if c["name"] == "pulser_ops_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        refreshes = sb.app.gotrue.refreshes
        page.goto(base + "/")
        expect(page.get_by_test_id("queued-A")).to_have_text("1")
        assert sb.app.gotrue.refreshes > refreshes, "the short-lived session was refreshed"
        page.goto(f"{base}/runs/{runs['bob'].id}")
        expect(page.locator("h1")).to_have_text("404")
        page.goto(f"{base}/runs/{runs['alice'].id}")
        page.once("dialog", lambda d: d.accept())
        page.locator("#cancel-run").click()
        expect(page.locator("#summary .run-status .badge")).to_have_text("cancelled")
        shot(page, "supabase-operator-run")
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(base + "/login")
    with pulser_ops.connect(supabase_url=sb.url, supabase_key=sb.service_key) as svc:
        assert svc.runs.get(runs["bob"].id).status == "queued"
        assert svc.runs.get(runs["alice"].id).status == "cancelled"
