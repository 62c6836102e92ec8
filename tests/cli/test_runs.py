"""``pulser-ops runs ls|show|cancel|run-now|export`` against a real database."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import pulser_ops
from tests.cli.helpers import (
    CLEAN_ENV,
    PULSER_OPS_EXE,
    Cli,
    assert_ok,
    assert_one_error,
    count,
    finish,
)


@pytest.fixture
def mixed(client: pulser_ops.Client) -> dict[str, str]:
    """One succeeded run (lane B), one failed (lane C), two queued (lanes A and D)."""
    ids = {}
    client.runs.create("greet", {"name": "ok"})
    ids["succeeded"] = finish(client, "B", result={"n": 1})
    client.runs.create("greet", {"name": "bad"}, lane="C")
    ids["failed"] = finish(client, "C", "failed", error="boom\nsecond line", error_class="Oops")
    ids["queued_a"] = str(client.runs.create("greet", {"name": "qa"}, lane="A").id)
    ids["queued_d"] = str(client.runs.create("greet", {"name": "qd"}, lane="D").id)
    return ids


def _ids_json(result_stdout: str) -> list[str]:
    return [r["id"] for r in json.loads(result_stdout)]


def test_ls_filters_and_formats(cli: Cli, mixed: dict[str, str]) -> None:
    everything = _ids_json(assert_ok(cli("runs", "ls", "--format", "json")).stdout)
    assert set(everything) == set(mixed.values())
    assert everything[0] == mixed["queued_d"]  # newest first

    queued = _ids_json(assert_ok(cli("runs", "ls", "-s", "queued", "-f", "json")).stdout)
    assert set(queued) == {mixed["queued_a"], mixed["queued_d"]}
    lanes = _ids_json(assert_ok(cli("runs", "ls", "--lane", "a,c", "-f", "json")).stdout)
    assert set(lanes) == {mixed["queued_a"], mixed["failed"]}
    done = _ids_json(
        assert_ok(cli("runs", "ls", "-s", "succeeded", "-s", "failed", "-f", "json")).stdout
    )
    assert set(done) == {mixed["succeeded"], mixed["failed"]}
    assert _ids_json(assert_ok(cli("runs", "ls", "-n", "1", "-f", "json")).stdout) == [
        mixed["queued_d"]
    ]
    assert _ids_json(assert_ok(cli("runs", "ls", "--template", "other", "-f", "json")).stdout) == []
    recent = _ids_json(assert_ok(cli("runs", "ls", "--since", "1h", "-f", "json")).stdout)
    assert len(recent) == 4
    future = assert_ok(cli("runs", "ls", "--since", "2999-01-01T00:00:00", "-f", "json"))
    assert json.loads(future.stdout) == []
    assert _ids_json(assert_ok(cli("runs", "ls", "--stuck", "-f", "json")).stdout) == []

    rows = list(csv.DictReader(io.StringIO(assert_ok(cli("runs", "ls", "-f", "csv")).stdout)))
    failed = next(r for r in rows if r["id"] == mixed["failed"])
    assert (failed["status"], failed["lane"], failed["error_class"]) == ("failed", "C", "Oops")
    assert json.loads(failed["params"]) == {"name": "bad"}

    table = assert_ok(cli("runs", "ls")).stdout
    assert all(run_id in table for run_id in mixed.values())


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--status", "sleeping"], "unknown status 'sleeping'"),
        (["--lane", "Z"], "unknown lane 'Z'"),
        (["--since", "last week"], "--since"),
    ],
)
def test_ls_bad_filters(cli: Cli, mixed: dict[str, str], args: list[str], fragment: str) -> None:
    assert_one_error(cli("runs", "ls", *args), fragment)


def test_show_prints_run_steps_artifacts_and_events(
    cli: Cli, client: pulser_ops.Client, storage_dir: Path
) -> None:
    run = client.runs.create("greet", {"name": "shown"})
    [claimed] = client.runs.claim("w-show", lanes="B")
    client.runs.record_step(run.id, "w-show", 1, 0, "say", "shell", "succeeded", exit_code=0)
    client.events.log(run.id, "said [bold]hello[/bold]")  # markup must be shown, not applied
    client.artifacts.put(run.id, "report.md", "# hi", attempt=1)
    client.artifacts.put(run.id, "blob.bin", b"\x00" * 10, attempt=1)
    out = assert_ok(cli("runs", "show", str(run.id))).stdout
    assert str(run.id) in out and "running" in out and "w-show" in out
    assert "say" in out and "shell" in out
    assert "report.md" in out and "inline" in out
    assert f"run-artifacts/{run.id}/1/blob.bin" in out, out  # each attempt keeps its own
    assert "said [bold]hello[/bold]" in out
    assert '{"name":"shown"}' in out
    shown = json.loads(assert_ok(cli("runs", "show", str(run.id), "--json")).stdout)
    assert shown["worker_id"] == "w-show" and shown["attempt"] == claimed.attempt


@pytest.mark.parametrize(
    ("run_id", "fragment"),
    [("00000000-0000-0000-0000-000000000000", "not found"), ("not-a-uuid", "not a uuid")],
)
def test_show_unknown_run(cli: Cli, run_id: str, fragment: str) -> None:
    assert_one_error(cli("runs", "show", run_id), fragment)


def test_cancel_in_bulk(cli: Cli, client: pulser_ops.Client, db_url: str) -> None:
    queued = [str(client.runs.create("greet", {"name": f"q{i}"}).id) for i in range(2)]
    client.runs.create("greet", {"name": "running"}, lane="D")
    [running] = client.runs.claim("w-cancel", lanes="D")
    result = assert_ok(
        cli("runs", "cancel", *queued, str(running.id), "--reason", "ops said so", "--yes")
    )
    assert f"{running.id}  cancel requested (running on w-cancel)" in result.stdout
    for run_id in queued:
        assert f"{run_id}  cancelled" in result.stdout
        after = client.runs.get(run_id)
        assert after.status == "cancelled" and after.cancel_reason == "ops said so"
    assert client.runs.get(running.id).cancel_requested


def test_cancel_refuses_without_yes_when_not_interactive(
    cli: Cli, client: pulser_ops.Client, db_url: str
) -> None:
    run = client.runs.create("greet", {"name": "keep"})
    assert_one_error(cli("runs", "cancel", str(run.id)), "--yes")
    assert client.runs.get(run.id).status == "queued"


def test_cancel_changes_nothing_when_any_id_is_bad(
    cli: Cli, client: pulser_ops.Client, mixed: dict[str, str], db_url: str
) -> None:
    unknown = "00000000-0000-0000-0000-000000000001"
    assert_one_error(cli("runs", "cancel", mixed["queued_a"], unknown, "--yes"), unknown)
    assert_one_error(cli("runs", "cancel", mixed["queued_a"], "garbage", "--yes"), "garbage")
    assert_one_error(
        cli("runs", "cancel", mixed["queued_a"], mixed["succeeded"], "--yes"),
        "already finished",
        mixed["succeeded"],
    )
    assert count(db_url, "runs", "status = 'cancelled'") == 0


def _waiting(client: pulser_ops.Client, lane: str, n: int) -> list[str]:
    later = datetime.now(UTC) + timedelta(hours=1)
    return [str(client.runs.create("greet", {"name": f"w{i}"}, lane=lane, run_after=later).id)
            for i in range(n)]  # fmt: skip


def test_run_now_by_ids_moves_the_waiting_and_says_which_were_due(
    cli: Cli, client: pulser_ops.Client
) -> None:
    waiting = _waiting(client, "B", 2)
    due = str(client.runs.create("greet", {"name": "due"}, lane="B").id)
    result = assert_ok(cli("runs", "run-now", *waiting, due))
    for run_id in waiting:
        assert f"{run_id}  moved to now (was due " in result.stdout
    assert f"{due}  already due" in result.stdout
    claimed = client.runs.claim("w-now", lanes=["B"], limit=5)
    assert {str(r.id) for r in claimed} == {*waiting, due}


def test_run_now_changes_nothing_when_any_id_is_not_a_waiting_run(
    cli: Cli, client: pulser_ops.Client, mixed: dict[str, str], db_url: str
) -> None:
    [waiting] = _waiting(client, "C", 1)
    client.runs.create("greet", {"name": "busy"}, lane="D")
    [busy] = [r for r in client.runs.claim("w-busy", lanes=["D"], limit=5) if r.params["name"] == "busy"]
    unknown = "00000000-0000-0000-0000-000000000001"
    for bad, fragment in [(unknown, "not found"), ("garbage", "not a run id"),
                          (mixed["succeeded"], "already finished"), (str(busy.id), "running")]:
        assert_one_error(cli("runs", "run-now", waiting, bad), fragment, "nothing was moved")
    assert count(db_url, "runs", f"id = '{waiting}' and available_at > now()") == 1
    assert_one_error(cli("runs", "run-now"), "give run ids, or --lane / --template")
    assert_one_error(cli("runs", "run-now", waiting, "--lane", "C"), "not both")


def test_run_now_over_a_filter_previews_asks_and_moves(
    cli: Cli, client: pulser_ops.Client, db_url: str
) -> None:
    waiting = _waiting(client, "C", 3)
    _waiting(client, "A", 1)  # another lane: not touched
    assert_one_error(cli("runs", "run-now", "--lane", "C"), "--yes")
    assert count(db_url, "runs", "available_at > now()") == 4
    result = assert_ok(cli("runs", "run-now", "--lane", "C", "--template", "greet", "--yes"))
    assert "moved 3 run(s) to now" in result.stdout
    assert count(db_url, "runs", "available_at > now()") == 1
    assert {str(r.id) for r in client.runs.claim("w-now", lanes=["C"], limit=5)} == set(waiting)
    assert "no waiting runs match" in assert_ok(cli("runs", "run-now", "--lane", "C")).stdout


def test_export_json_to_file_and_csv_to_stdout(
    cli: Cli, client: pulser_ops.Client, tmp_path: Path
) -> None:
    client.runs.create_many([{"template": "greet", "params": {"name": f"r{i}"}} for i in range(7)])
    target = tmp_path / "runs.json"
    assert_ok(cli("runs", "export", "--output", str(target)))
    exported = json.loads(target.read_text())
    assert len(exported) == 7 and {r["params"]["name"] for r in exported} == {
        f"r{i}" for i in range(7)
    }
    assert not (tmp_path / "runs.json.partial").exists()

    rows = list(csv.DictReader(io.StringIO(assert_ok(cli("runs", "export", "-f", "csv")).stdout)))
    assert len(rows) == 7
    empty = assert_ok(cli("runs", "export", "--status", "failed"))
    assert json.loads(empty.stdout) == []


def test_export_to_unwritable_place_is_one_line(cli: Cli, tmp_path: Path) -> None:
    assert_one_error(
        cli("runs", "export", "--output", str(tmp_path / "no" / "such" / "dir" / "x.json")),
        "--output",
    )
    # a name the file system cannot hold raised OSError from the directory check
    assert_one_error(cli("runs", "export", "--output", "x" * 5000 + "/runs.json"), "--output")


def _on_a_terminal(args: list[str], db_url: str, answer: str) -> tuple[int, str]:
    """Run the CLI with stdin/stderr on a pseudo-terminal and answer its question."""
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    env["PULSER_OPS_DATABASE_URL"] = db_url
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [PULSER_OPS_EXE, *args], stdin=slave, stderr=slave, stdout=subprocess.PIPE, env=env
    )
    os.close(slave)
    try:
        seen = b""
        while b"[y/N]" not in seen:
            seen += os.read(master, 1024)
        os.write(master, answer.encode() + b"\n")
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return proc.returncode, out.decode()


@pytest.mark.parametrize(
    ("answer", "exit_code", "status"), [("y", 0, "cancelled"), ("n", 1, "queued")]
)
def test_cancel_asks_on_a_terminal(
    client: pulser_ops.Client, db_url: str, answer: str, exit_code: int, status: str
) -> None:
    run = client.runs.create("greet", {"name": "ask"})
    code, out = _on_a_terminal(["runs", "cancel", str(run.id)], db_url, answer)
    assert code == exit_code, out
    assert client.runs.get(run.id).status == status
