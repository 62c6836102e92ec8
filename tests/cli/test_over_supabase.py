"""The same commands over Supabase (the stand-in: PostgREST-style RPC, Storage, Realtime), chosen
with ``--supabase-url``/``--supabase-key`` only: the CLI must not care which transport it has."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import pulser_ops
from tests.cli.helpers import GREET, Cli, assert_ok, assert_one_error, count, tailing
from tests.standin import StandIn
from tests.support.databases import MigratedTemplate

SECRET = "cli-suite-jwt-secret-with-at-least-32-bytes!"


@pytest.fixture(scope="module")
def standin(
    migrated_template: MigratedTemplate, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[StandIn, str]]:
    url = migrated_template.clone(prefix="cli_sb")
    try:
        with StandIn(url, SECRET, tmp_path_factory.mktemp("cli-sb-storage")) as sb:
            yield sb, url
    finally:
        migrated_template.cluster.drop_database(url.rsplit("/", 1)[1])


def test_operator_flow_over_supabase(standin: tuple[StandIn, str], tmp_path: Path) -> None:
    sb, db_url = standin
    cli = Cli({"PULSER_OPS_HOME": str(tmp_path / "unused-home")})
    conn = ["--supabase-url", sb.url, "--supabase-key", sb.service_key]

    template = tmp_path / "greet.json"
    template.write_text(json.dumps(GREET))
    assert "applied greet" in assert_ok(cli("templates", "apply", str(template), *conn)).stdout

    run_id = assert_ok(cli("enqueue", "greet", "-P", "name=sb", *conn)).stdout.split()[0]
    listed = json.loads(assert_ok(cli("runs", "ls", "-f", "json", *conn)).stdout)
    assert [r["id"] for r in listed] == [run_id]
    assert run_id in assert_ok(cli("runs", "show", run_id, *conn)).stdout

    assert_one_error(cli("enqueue", "nope", *conn), "unknown template")
    assert_one_error(cli("enqueue", "greet", "-P", "name=1", *conn), "params.name")
    assert_one_error(cli("runs", "show", "00000000-0000-0000-0000-000000000000", *conn))
    assert_one_error(cli("lanes", "pause", "X", *conn), "unknown lane")
    assert count(db_url, "runs") == 1

    assert "lane A: paused" in assert_ok(cli("lanes", "pause", "A", *conn)).stdout
    assert_ok(cli("runs", "cancel", run_id, "--yes", *conn))
    with psycopg.connect(db_url) as c:
        row = c.execute("select status from public.runs where id = %s", (run_id,)).fetchone()
        assert row == ("cancelled",)
        assert c.execute("select paused from public.lanes where id = 'A'").fetchone() == (True,)
    assert not (tmp_path / "unused-home").exists()  # no embedded database was started
    # tail over Realtime of a finished run: prints and exits with its outcome
    assert cli("tail", run_id, *conn).exit_code == 3


def test_tail_follows_a_run_live_over_realtime(standin: tuple[StandIn, str]) -> None:
    sb, _ = standin
    connection = {"SUPABASE_URL": sb.url, "SUPABASE_SERVICE_ROLE_KEY": sb.service_key}
    with pulser_ops.connect(supabase_url=sb.url, supabase_key=sb.service_key) as client:
        client.templates.upsert(GREET)
        client.lanes.resume("B")
        run = client.runs.create("greet", {"name": "live"}, lane="B")
        with tailing(connection, str(run.id)) as proc:
            assert proc.stdout is not None
            assert f"run {run.id} queued" in proc.stdout.readline()
            [claimed] = client.runs.claim("w-sb", lanes="B")
            client.events.log(run.id, "over realtime")
            client.runs.complete(run.id, "w-sb", claimed.attempt, "succeeded")
            rest = proc.stdout.read()
            assert proc.wait(timeout=60) == 0
    assert "claimed by w-sb" in rest and "over realtime" in rest
    assert f"run {run.id} succeeded" in rest


def test_schedules_over_supabase_by_role(standin: tuple[StandIn, str], tmp_path: Path) -> None:
    """An admin applies and pauses schedules, an operator reads them, only the service role
    (the sweeper's key) fires them; each refusal is one error line."""
    sb, db_url = standin
    with pulser_ops.connect(supabase_url=sb.url, supabase_key=sb.service_key) as svc:
        svc.templates.upsert(GREET)

    def as_user(app_metadata: dict[str, str]) -> Cli:
        token = sb.user_token("00000000-0000-4000-8000-00000000005c", app_metadata)
        return Cli({"SUPABASE_URL": sb.url, "SUPABASE_PUBLISHABLE_KEY": sb.publishable_key,
                    "PULSER_OPS_ACCESS_TOKEN": token, "PULSER_OPS_HOME": str(tmp_path / "h")})

    admin, operator = as_user({"ops_role": "admin"}), as_user({})
    service = Cli({"SUPABASE_URL": sb.url, "SUPABASE_SERVICE_ROLE_KEY": sb.service_key,
                   "PULSER_OPS_HOME": str(tmp_path / "h")})  # fmt: skip
    path = tmp_path / "s.yaml"
    path.write_text("{name: sb-hourly, template: greet, cron: '@hourly', params: {name: sb}}\n")
    assert "applied sb-hourly (next in " in assert_ok(admin("schedules", "apply", str(path))).stdout
    assert_one_error(operator("schedules", "apply", str(path)), "permission denied")
    assert_one_error(operator("schedules", "pause", "sb-hourly"), "permission denied")
    assert "sb-hourly" in assert_ok(operator("schedules", "ls")).stdout
    assert len(assert_ok(operator("schedules", "preview", "@daily")).stdout.splitlines()) == 6

    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute("update public.run_schedules set next_run_at = now() - interval '1 minute'")
    assert_one_error(admin("schedules", "fire"), "permission denied")
    fired = assert_ok(service("schedules", "fire")).stdout
    assert fired.startswith("sb-hourly  due ") and " run " in fired
    assert "paused sb-hourly" in assert_ok(admin("schedules", "pause", "sb-hourly")).stdout
    assert_ok(admin("schedules", "rm", "sb-hourly", "--yes"))
    assert count(db_url, "run_schedules") == 0 and count(db_url, "runs", "template = 'greet'") >= 1
