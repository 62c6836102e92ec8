"""`pulser-ops doctor` on both transports: the checks pass on a good deployment, the smoke run
goes through claim, heartbeat, a Storage file, a live change and completion, and it cleans up."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

import pulser_ops
from pulser_ops.cli import app
from pulser_ops.doctor import REQUIRED_FUNCTIONS, run_checks, smoke
from tests.contract.conftest import ANON, Caller, Env

ROOT = Path(__file__).resolve().parents[2]


def test_required_functions_match_every_call_the_sdk_makes() -> None:
    source = (ROOT / "src/pulser_ops/calls.py").read_text()
    called = set(re.findall(r'(?:Call|_bulk)\(\s*"([a-z_]+)"', source))  # _bulk: a Call
    assert called <= REQUIRED_FUNCTIONS, called - REQUIRED_FUNCTIONS
    assert REQUIRED_FUNCTIONS - called == {"enqueue_run"}, "the one API function only users call"


def test_checks_pass_and_smoke_cleans_up(env: Env) -> None:
    with env.client() as client:
        checks, info = run_checks(client)
        assert info is not None
        bad = [c for c in checks if c.status == "fail"]
        assert not bad, bad
        assert {c.name for c in checks} >= {"connection", "migrations", "functions", "realtime publication",
                                            "row level security", "storage bucket", "keys"}
        assert next(c for c in checks if c.name == "migrations").status == "ok"
        before = env.sql("select count(*) from public.runs")[0][0]
        results = {c.name: c for c in smoke(client)}
        for name in ("claim", "heartbeat", "artifact", "realtime", "complete", "cleanup",
                     "row cap", "call time", "paged delete", "realtime ready", "large change",
                     "deleted run"):
            assert results[name].status == "ok", results[name]
        assert results["realtime"].detail.endswith("(UPDATE)"), "a live change, not a catch-up read"
        assert results["row cap"].detail.endswith("1500 returned")
        assert results["paged delete"].detail.startswith("1500 runs deleted")
        assert results["paged delete"].detail.endswith("5 of 5 files removed")
        # A name Storage refuses: until the SDK encodes or refuses such names, a warning.
        assert results["artifact names"].status in ("ok", "warn")
        if env.sb is not None:
            assert results["wrong key"].status == "ok"
            assert "refused at the gateway" in results["wrong key"].detail
            assert next(c for c in checks if c.name == "key style").status == "warn"  # legacy
        else:
            assert "wrong key" not in results and "key style" not in {c.name for c in checks}
        assert env.sql("select count(*) from public.runs")[0][0] == before, "the smoke run is gone"
        assert env.sql("select count(*) from public.artifacts")[0][0] == 0
        assert env.state()["storage.objects"] == [] and env.state()["files"] == []


def test_smoke_never_keeps_someone_elses_run(env: Env) -> None:
    with env.client() as client:
        client.templates.upsert({"name": "busy", "default_lane": "A"})
        other = client.runs.create("busy", lane="A", priority=100)  # older, same priority
        results = {c.name: c for c in smoke(client)}
        assert results["claim"].status == "ok"
        back = client.runs.get(other.id)
        assert back.status == "queued" and back.attempt == 0, "released with its attempt given back"


def test_operator_key_is_a_warning_and_anon_a_failure(env: Env) -> None:
    if env.sb is None:
        return  # direct connections carry no JWT: the keys check is about Supabase keys
    with env.client(Caller("operator", "d0000000-0000-0000-0000-00000000000d")) as client:
        checks, _ = run_checks(client)
        assert next(c for c in checks if c.name == "keys").status == "warn"
    with env.client(ANON) as client:
        checks, info = run_checks(client)
        assert info is None
        assert any(c.status == "fail" and "service role" in c.fix for c in checks)


def test_cli_reports_a_database_without_migrations(empty_db_url: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["doctor", "--db-url", empty_db_url])
    assert result.exit_code == 1
    assert "apply the migrations" in result.output
    assert "doctor found problems" in result.output


def test_cli_smoke_passes_on_a_migrated_database(db_url: str, tmp_path: Path, monkeypatch: object) -> None:
    import pytest

    mp = pytest.MonkeyPatch()
    mp.setenv("PULSER_OPS_STORAGE_DIR", str(tmp_path))
    try:
        result = CliRunner().invoke(app, ["doctor", "--smoke", "--db-url", db_url])
    finally:
        mp.undo()
    assert result.exit_code == 0, result.output
    assert "fail" not in result.output.split("pulser-ops doctor", 1)[1]
    with pulser_ops.connect(db_url, storage_dir=tmp_path) as client:
        assert client.runs.list() == []
