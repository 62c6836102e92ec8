"""The sweeper: bounded batches, its report, the race with heartbeats, the schedules each pass
fires, and the ways it is scheduled (the GitHub workflow `pulser-ops init` writes, the pg_cron
snippet)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg.types.json import Jsonb
from typer.testing import CliRunner

import pulser_ops
from pulser_ops import LeaseLost
from pulser_ops.cli import app
from tests.support.pgcluster import PgCluster

ROOT = Path(__file__).resolve().parents[2]


def _client(url: str, tmp_path: Path) -> pulser_ops.Client:
    return pulser_ops.connect(url, storage_dir=tmp_path / "files")


def _running_runs(
    client: pulser_ops.Client, n: int, *, max_attempts: int = 3
) -> list[pulser_ops.Run]:
    client.templates.upsert({"name": "sw", "max_attempts": max_attempts, "lease_seconds": 30})
    client.runs.create_many([{"template": "sw"} for _ in range(n)])
    claimed: list[pulser_ops.Run] = []
    while len(claimed) < n:
        claimed += client.runs.claim("w-dead", limit=min(1000, n - len(claimed)))
    return claimed


def _expire(url: str, ids: list[Any] | None = None) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        if ids is None:
            conn.execute(
                "update public.runs set lease_expires_at = now() - interval '1 s' where status = 'running'"
            )
        else:
            conn.execute(
                "update public.runs set lease_expires_at = now() - interval '1 s' where id = any(%s)",
                [[str(i) for i in ids]],
            )


def _sweeper(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PULSER_OPS_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "sweeper", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sweeps_in_bounded_batches_and_reports(db_url: str, tmp_path: Path) -> None:
    with _client(db_url, tmp_path) as client:
        runs = _running_runs(client, 1200)
        _expire(db_url, [r.id for r in runs[:1100]])
        out = _sweeper(db_url, "--batch", "500")
        assert out.returncode == 0, out.stderr
        assert re.search(r"requeued 1100, failed 0, cancelled 0 in 3 batch", out.stdout), out.stdout
        assert "without a heartbeat" in out.stdout
        statuses = {r.status for r in client.runs.get_many([r.id for r in runs[:1100]])}
        assert statuses == {"queued"}
        assert {r.status for r in client.runs.get_many([r.id for r in runs[1100:]])} == {"running"}
        # Nothing left: a second sweep says so and still exits 0.
        again = _sweeper(db_url)
        assert again.returncode == 0 and "nothing expired" in again.stdout


def test_fails_runs_on_their_last_attempt(db_url: str, tmp_path: Path) -> None:
    with _client(db_url, tmp_path) as client:
        runs = _running_runs(client, 3, max_attempts=1)
        _expire(db_url)
        out = _sweeper(db_url)
        assert "requeued 0, failed 3" in out.stdout
        done = client.runs.get_many([r.id for r in runs])
        assert {r.status for r in done} == {"failed"}
        assert all(
            r.error_class == "lease_expired" and "stopped heartbeating" in (r.error or "")
            for r in done
        )
        assert {s.id for s in client.runs.stuck()} == set(), "failed runs are terminal, not stuck"


def _due_schedules(url: str, client: pulser_ops.Client) -> None:
    """Two schedules due a minute ago: ``tick`` can enqueue its run, ``broken``'s params no
    longer fit its template (changed after the schedule was saved)."""
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    client.templates.upsert({"name": "tick", "params_schema": schema})
    client.templates.upsert({"name": "tock", "params_schema": schema})
    client.schedules.upsert_many([{"name": "tick", "template": "tick", "cron": "@hourly"},
                                  {"name": "broken", "template": "tock", "cron": "@hourly",
                                   "params": {"n": 1}}])  # fmt: skip
    client.templates.upsert({"name": "tock", "params_schema": {
        "type": "object", "properties": {"n": {"type": "string"}}}})
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("update public.run_schedules set next_run_at = now() - interval '1 minute'")


def test_a_sweep_pass_fires_due_schedules(db_url: str, tmp_path: Path) -> None:
    with _client(db_url, tmp_path) as client:
        _due_schedules(db_url, client)
        skipped = _sweeper(db_url, "--no-schedules")
        assert skipped.returncode == 0, skipped.stderr
        assert "fired" not in skipped.stdout and skipped.stderr == ""
        assert client.runs.list() == [] and all(
            s.last_run_at is None for s in client.schedules.list())  # fmt: skip

        out = _sweeper(db_url, "--quiet")  # nothing expired, but something fired: said
        assert out.returncode == 0, out.stderr  # a schedule that cannot enqueue is not fatal
        assert re.fullmatch(r"sweep: nothing expired \(\d+ ms\); fired 1 schedule\(s\): tick; "
                            r"1 schedule\(s\) could not enqueue: broken\n", out.stdout), out.stdout
        assert re.fullmatch(r"sweeper: schedule broken \(due \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\):"
                            r" invalid params for template tock: .*\n", out.stderr), out.stderr
        [run] = client.runs.list()
        assert run.template == "tick" and (run.idempotency_key or "").startswith("schedule:tick:")
        after = {s.name: s for s in client.schedules.list()}
        assert after["tick"].last_run_id == run.id and after["tick"].last_error is None
        assert "invalid params" in (after["broken"].last_error or "")

        quiet = _sweeper(db_url, "--quiet")  # nothing due any more: nothing said
        assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""
        assert len(client.runs.list()) == 1


def test_bad_configuration_is_one_line_and_nonzero(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSER_OPS_", "SUPABASE_"))}
    env["SUPABASE_URL"] = "http://127.0.0.1:9"
    out = subprocess.run(
        [sys.executable, "-m", "sweeper"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert out.stderr.strip().count("\n") == 0 and "SUPABASE_SERVICE_ROLE_KEY" in out.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "sweeper", "--batch", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--batch" in bad.stderr


def test_sweep_and_heartbeat_race_one_wins_cleanly(db_url: str, tmp_path: Path) -> None:
    """Over many rounds, a heartbeat and a sweep hit the same just-expired run at once: either the
    heartbeat wins (run still running, not in the sweep result) or the sweep wins (heartbeat gets
    LeaseLost, run queued). Never both, never neither."""
    heartbeat_wins = sweep_wins = 0
    with _client(db_url, tmp_path) as client, _client(db_url, tmp_path) as other:
        client.templates.upsert({"name": "race", "max_attempts": 100, "lease_seconds": 30})
        run = client.runs.create("race")
        for _ in range(90):  # < max_attempts: every round the sweep wins uses one
            (claimed,) = client.runs.claim("w-race", limit=1)
            _expire(db_url, [claimed.id])
            barrier = threading.Barrier(2)
            outcome: dict[str, Any] = {}

            def beat(
                claimed: pulser_ops.Run = claimed,
                outcome: dict[str, Any] = outcome,
                barrier: threading.Barrier = barrier,
            ) -> None:
                barrier.wait()
                try:
                    outcome["beat"] = client.runs.heartbeat(claimed.id, "w-race", claimed.attempt)
                except LeaseLost:
                    outcome["beat"] = "lost"

            def sweep(
                outcome: dict[str, Any] = outcome, barrier: threading.Barrier = barrier
            ) -> None:
                barrier.wait()
                outcome["sweep"] = other.runs.sweep()

            threads = [threading.Thread(target=beat), threading.Thread(target=sweep)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            swept = any(r.run_id == run.id for r in outcome["sweep"])
            now = client.runs.get(run.id)
            if outcome["beat"] == "lost":
                assert swept and now.status == "queued", "the sweep won: run requeued"
                sweep_wins += 1
            else:
                assert not swept and now.status == "running", "the heartbeat won: run untouched"
                heartbeat_wins += 1
                client.runs.release(run.id, "w-race", claimed.attempt)
    assert heartbeat_wins + sweep_wins == 90


def _github_run(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A ``run:`` script the way GitHub's runner runs it (``bash -e {0}``, no profile), from
    ``cwd``; the script file itself lives elsewhere, as the runner's does."""
    with tempfile.TemporaryDirectory() as where:
        script_file = Path(where) / "step.sh"
        script_file.write_text(script)
        return subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_file)],
            cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip


def test_init_writes_the_sweeper_workflow_and_its_command_runs(
    db_url: str, tmp_path: Path
) -> None:
    """`pulser-ops init` gives a user's repository its sweeper workflow: it installs the
    released package pinned to this version (never `pip install .` of a checkout the user
    does not have), and its sweep step, run as GitHub runs it, sweeps the database."""
    project = tmp_path / "project"
    result = CliRunner().invoke(app, ["init", "--dir", str(project)])
    assert result.exit_code == 0, result.output
    path = project / ".github/workflows/sweeper.yml"
    assert f"created    {path}" in result.stdout
    wf = yaml.safe_load(path.read_text())
    triggers = wf.get(True) or wf.get("on")  # YAML 1.1 reads the key `on` as True
    assert "workflow_dispatch" in triggers
    assert triggers["schedule"][0]["cron"] == "*/5 * * * *"
    job = wf["jobs"]["sweep"]
    steps = job["steps"]
    assert not any("checkout" in s.get("uses", "") for s in steps), "no checkout needed"
    install = next(s for s in steps if s.get("name") == "Install pulser-ops")
    assert f'"pulser-ops=={pulser_ops.__version__}"' in install["run"]
    assert "pip install ." not in path.read_text()
    assert set(job["env"]) >= {"SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "PULSER_OPS_DATABASE_URL"}
    sweep_step = next(s for s in steps if s.get("name") == "Sweep expired runs")

    with _client(db_url, tmp_path) as client:
        _running_runs(client, 2)
        _expire(db_url)
    # The step's own script, with the secrets GitHub leaves empty when unset, and
    # `pulser-ops` on PATH as the install step leaves it.
    base = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PULSER_OPS_", "SUPABASE_"))},
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PULSER_OPS_SWEEP_BATCH": "500",
        "SUPABASE_URL": "",
        "SUPABASE_SERVICE_ROLE_KEY": "",
    }
    out = _github_run(sweep_step["run"], {**base, "PULSER_OPS_DATABASE_URL": db_url}, tmp_path)
    assert out.returncode == 0, out.stderr
    assert "requeued 2" in out.stdout

    # No secret set: a clear failure, never a sweep of an embedded database on the runner.
    unset = _github_run(sweep_step["run"], {**base, "PULSER_OPS_DATABASE_URL": ""}, tmp_path)
    assert unset.returncode == 1
    assert "::error::set the PULSER_OPS_DATABASE_URL secret" in unset.stdout
    assert not (tmp_path / ".pulser-ops").exists()

    # Written once: a second init leaves it, an edited copy is kept and reported.
    path.write_text(path.read_text() + "# my edit\n")
    again = CliRunner().invoke(app, ["init", "--dir", str(project)])
    assert again.exit_code == 1 and str(path) in again.stderr
    assert path.read_text().endswith("# my edit\n")
    bare = tmp_path / "bare"
    CliRunner().invoke(app, ["init", "--dir", str(bare), "--no-workflows"])
    assert (bare / "supabase/seed.sql").is_file() and not (bare / ".github").exists()


def test_pg_cron_snippet_schedules_a_working_sweep(
    pg_cluster: PgCluster, db_url: str, tmp_path: Path
) -> None:
    """pg_cron runs jobs in cron.database_name (here the cluster's `postgres` database), so the
    snippet is applied to a database migrated there; the job's command is then run as pg_cron
    would run it."""
    admin = pg_cluster.url("postgres")
    from pulser_ops.db.migrate import push

    push(admin)
    with psycopg.connect(admin, autocommit=True) as conn:
        version = conn.execute(
            "select default_version from pg_available_extensions where name = 'pg_cron'"
        ).fetchone()
        assert version is not None
        snippet = (ROOT / "sweeper/pg_cron.sql").read_text()
        parsed = re.match(r"(\d+)\.(\d+)", str(version[0]))
        assert parsed is not None
        major, minor = int(parsed[1]), int(parsed[2])
        if (major, minor) < (1, 5):
            # Debian bookworm ships pg_cron 1.4, which predates second schedules (Supabase has them).
            snippet = snippet.replace("'30 seconds'", "'* * * * *'")
        conn.execute(snippet)
        jobs = dict(conn.execute("select jobname, command from cron.job").fetchall())
        assert set(jobs) == {"pulser-ops-sweep", "pulser-ops-schedules",
                             "pulser-ops-sweep-history-cleanup"}
        conn.execute(
            "select public.upsert_template(%s)", [Jsonb({"name": "cron", "max_attempts": 2})]
        )
        conn.execute("select public.enqueue_run('cron')")
        conn.execute("select count(*) from public.claim_runs('w', '{A,B,C,D}', 10, 30)")
        conn.execute(
            "update public.runs set lease_expires_at = now() - interval '1 s' where status = 'running'"
        )
        (swept,) = conn.execute(jobs["pulser-ops-sweep"]).fetchone() or (0,)
        assert swept == 1
        # the schedules job fires a due schedule, once per due time
        assert jobs["pulser-ops-schedules"] and conn.execute(
            "select schedule from cron.job where jobname = 'pulser-ops-schedules'"
        ).fetchone() == ("* * * * *",)
        conn.execute("select public.upsert_schedule(%s)",
                     [Jsonb({"name": "cron-hourly", "template": "cron", "cron": "@hourly"})])
        with conn.transaction():  # unseen by pg_cron's own run of the job meanwhile
            conn.execute(
                "update public.run_schedules set next_run_at = now() - interval '1 minute'")
            (fired,) = conn.execute(jobs["pulser-ops-schedules"]).fetchone() or (0,)
        assert fired == 1
        assert conn.execute(jobs["pulser-ops-schedules"]).fetchone() == (0,)
        assert conn.execute("select count(*) from public.runs where template = 'cron'"
                            " and idempotency_key like 'schedule:cron-hourly:%'").fetchone() == (1,)
        conn.execute(snippet)  # re-running replaces, never duplicates
        assert conn.execute(
            "select count(*) from cron.job where jobname = 'pulser-ops-sweep'"
        ).fetchone() == (1,)
        for job in jobs:
            conn.execute("select cron.unschedule(%s)", [job])


@pytest.mark.parametrize("flag", ["--loop"])
def test_loop_mode_keeps_going_and_stops_on_sigterm(db_url: str, tmp_path: Path, flag: str) -> None:
    env = {**os.environ, "PULSER_OPS_DATABASE_URL": db_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweeper", flag, "--interval", "0.2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with _client(db_url, tmp_path) as client:
            runs = _running_runs(client, 3)
            _expire(db_url)
            for _ in range(100):
                if {r.status for r in client.runs.get_many([r.id for r in runs])} == {"queued"}:
                    break
                threading.Event().wait(0.1)
            else:
                pytest.fail("the looping sweeper did not requeue the expired runs")
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "requeued 3" in out


def test_the_repositorys_own_sweeper_workflow_runs_from_the_checkout(
    db_url: str, tmp_path: Path
) -> None:
    """`.github/workflows/sweeper.yml` (this repository's, for a deployment from a checkout):
    its sweep step, run as GitHub runs it from the checkout, sweeps with `python -m sweeper`;
    without a secret it fails clearly instead of sweeping an embedded database on the runner;
    and the schedule is opt-in, so forks without a project do not sweep."""
    repo = Path(__file__).resolve().parents[2]
    wf = yaml.safe_load((repo / ".github/workflows/sweeper.yml").read_text())
    job = wf["jobs"]["sweep"]
    assert "vars.PULSER_OPS_SWEEPER == 'on'" in job["if"]
    assert "workflow_dispatch" in job["if"]
    sweep_step = next(s for s in job["steps"] if s.get("name") == "Sweep expired runs")
    assert "python -m sweeper" in sweep_step["run"]

    with _client(db_url, tmp_path) as client:
        _running_runs(client, 2)
        _expire(db_url)
    base = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PULSER_OPS_", "SUPABASE_"))},
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PULSER_OPS_SWEEP_BATCH": "500",
        "SUPABASE_URL": "",
        "SUPABASE_SERVICE_ROLE_KEY": "",
    }
    out = _github_run(sweep_step["run"], {**base, "PULSER_OPS_DATABASE_URL": db_url}, repo)
    assert out.returncode == 0, out.stderr
    assert "requeued 2" in out.stdout
    unset = _github_run(sweep_step["run"], {**base, "PULSER_OPS_DATABASE_URL": ""}, repo)
    assert unset.returncode == 1
    assert "::error::set the PULSER_OPS_DATABASE_URL secret" in unset.stdout
