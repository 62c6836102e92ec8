"""``pulser-ops schedules ...`` against a real database: apply a file (all or none), list it
three ways, pause, resume, remove, preview an expression and fire what is due."""

from __future__ import annotations

import json
import re
import shlex
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import typer.testing

import pulser_ops
from tests.cli.helpers import Cli, assert_ok, assert_one_error, count

SCHEDULES = """
- name: nightly
  template: greet
  cron: "30 2 * * *"
  timezone: Europe/Paris
  params: {name: night}
  lane: C
  description: the nightly greeting
- name: weekdays
  template: greet
  cron: "0 9 * * mon-fri"
  params: {name: team, count: 2}
"""


def _sql(db_url: str, statement: str, *args: object) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(statement, args)


def _due(db_url: str, name: str, ago: str = "1 minute") -> None:
    _sql(db_url, f"update public.run_schedules set next_run_at = now() - interval '{ago}'"
                 " where name = %s", name)  # fmt: skip


def _applied(cli: Cli, tmp_path: Path, text: str = SCHEDULES, name: str = "s.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return assert_ok(cli("schedules", "apply", str(path))).stdout


def test_apply_then_list_as_a_table_json_and_yaml(
    cli: Cli, client: pulser_ops.Client, tmp_path: Path
) -> None:
    applied = _applied(cli, tmp_path)
    lines = applied.splitlines()
    assert len(lines) == 2
    assert re.fullmatch(r"applied nightly \(next in (\d+[dhms] ?){1,2}, "
                        r"\d{4}-\d\d-\d\d \d\d:\d\d:00 UTC\)", lines[0]), lines[0]  # fmt: skip
    assert lines[1].startswith("applied weekdays (next in ")
    saved = {s.name: s for s in client.schedules.list()}
    assert (saved["nightly"].lane, saved["nightly"].params) == ("C", {"name": "night"})
    assert saved["weekdays"].timezone == "UTC"

    table = assert_ok(cli("schedules", "ls")).stdout
    header, *rows = table.splitlines()
    for col in ("NAME", "TEMPLATE", "CRON", "TIMEZONE", "NEXT", "NEXT (UTC)", "LAST RUN", "STATE"):
        assert col in header
    nightly = next(r for r in rows if r.startswith("nightly"))
    assert "30 2 * * *" in nightly and "Europe/Paris" in nightly and " in " in nightly
    assert "enabled" in nightly and saved["nightly"].next_run_at is not None
    assert saved["nightly"].next_run_at.strftime("%Y-%m-%d %H:%M:%S") in nightly

    as_json = json.loads(assert_ok(cli("schedules", "ls", "--format", "json")).stdout)
    assert [s["name"] for s in as_json] == ["nightly", "weekdays"]
    assert as_json[0]["next_run_at"] and as_json[0]["description"] == "the nightly greeting"

    # the YAML is a file apply reads back: the same schedules, their due times kept
    exported = assert_ok(cli("schedules", "ls", "-f", "yaml")).stdout
    assert "next_run_at" not in exported and "cron: 30 2 * * *" in exported
    assert_ok(cli("schedules", "apply", str(_write(tmp_path / "back.yaml", exported))))
    again = {s.name: s for s in client.schedules.list()}
    assert {n: s.model_copy(update={"updated_at": None}) for n, s in again.items()} == {
        n: s.model_copy(update={"updated_at": None}) for n, s in saved.items()}  # fmt: skip
    # and so is the JSON, read-only fields and all; one object is enough
    one = tmp_path / "one.json"
    one.write_text(json.dumps({**as_json[1], "cron": "@hourly", "enabled": False}))
    assert "applied weekdays (paused)" in assert_ok(
        cli("schedules", "apply", str(one))).stdout  # fmt: skip
    weekdays = next(s for s in client.schedules.list() if s.name == "weekdays")
    assert (weekdays.cron, weekdays.enabled) == ("@hourly", False)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_no_schedules(cli: Cli) -> None:
    result = assert_ok(cli("schedules", "ls"))
    assert result.stdout == "" and "no schedules" in result.stderr
    assert assert_ok(cli("schedules", "ls", "-f", "yaml")).stdout == "[]\n"


@pytest.mark.parametrize(
    ("name", "content", "fragments"),
    [
        ("s.yaml", "- name: a\n  cron: [\n", ["not valid YAML"]),
        ("s.json", "[{]", ["not valid JSON"]),
        ("s.yaml", "", ["no schedules"]),
        ("s.yaml", "[]\n", ["no schedules"]),
        ("s.yaml", "- 42\n", ["schedule 1: expected an object"]),
        # a bad second schedule: the first one must not be written either
        ("s.yaml", "- {name: a, template: greet, cron: '@daily', params: {name: x}}\n"
                   "- {name: b, template: greet, cron: '61 * * * *', params: {name: x}}\n",
         ["schedules[1] (b)", 'the minute field allows 0 to 59 (got "61")']),
        ("s.yaml", "- {name: a, template: greet, cron: '@daily', params: {name: x}}\n"
                   "- {name: b, template: nope, cron: '@daily'}\n",
         ["schedules[1] (b)", "unknown template nope"]),
        ("s.yaml", "{name: a, template: greet, cron: '@daily', timezone: Mars/Olympus}\n",
         ['unknown time zone "Mars/Olympus"']),
        ("s.yaml", "{name: a, template: greet, cron: '@daily', params: {name: ''}}\n",
         ["invalid params for template greet"]),
        ("s.yaml", "{name: a, template: greet, cron: '@daily', every: day}\n",
         ["schedule.every: unknown field"]),
        ("s.yaml", "- {name: a, template: greet, cron: '@daily', params: {name: x}}\n"
                   "- {name: a, template: greet, cron: '@hourly', params: {name: x}}\n",
         ["more than once"]),
        ("s.yaml", "{name: a, template: greet, cron: '@daily', params: {name: .nan}}\n",
         ["params"]),
    ],
)  # fmt: skip
def test_a_bad_file_applies_nothing(
    cli: Cli, db_url: str, tmp_path: Path, name: str, content: str, fragments: list[str]
) -> None:
    path = _write(tmp_path / name, content)
    assert_one_error(cli("schedules", "apply", str(path)), *fragments)
    assert count(db_url, "run_schedules") == 0


def test_the_file_is_read_before_connecting(tmp_path: Path) -> None:
    nowhere = Cli({"PULSER_OPS_DATABASE_URL": "postgresql://postgres@127.0.0.1:9/none"})
    bad = _write(tmp_path / "s.yaml", "- 42\n")
    assert_one_error(nowhere(
        "schedules", "apply", str(bad)), "schedule file", "expected an object")  # fmt: skip
    good = _write(tmp_path / "t.yaml", "{name: a, template: greet, cron: '@daily'}\n")
    line = assert_one_error(nowhere("schedules", "apply", str(good)))
    assert "schedule file" not in line  # the file was fine: now the database is what is missing


def test_pause_and_resume_count_from_now(
    cli: Cli, client: pulser_ops.Client, db_url: str, tmp_path: Path
) -> None:
    _applied(cli, tmp_path)
    assert assert_ok(cli("schedules", "pause", "nightly")).stdout == "paused nightly\n"
    listed = assert_ok(cli("schedules", "ls")).stdout
    assert re.search(r"^nightly .* paused", listed, re.MULTILINE), listed
    _due(db_url, "nightly", "2 days")  # missed while paused: not made up
    assert assert_ok(cli("schedules", "fire")).stderr.strip() == "no schedule is due"
    resumed = assert_ok(cli("schedules", "resume", "nightly")).stdout
    assert resumed.startswith("resumed nightly (next in ")
    [nightly] = [s for s in client.schedules.list() if s.name == "nightly"]
    assert nightly.enabled and nightly.next_run_at is not None
    assert nightly.next_run_at > datetime.now(UTC)
    for verb in ("pause", "resume"):
        assert_one_error(cli("schedules", verb, "nope"), "schedule nope not found")


def test_rm_asks_first(cli: Cli, client: pulser_ops.Client, tmp_path: Path) -> None:
    _applied(cli, tmp_path)
    assert_one_error(cli("schedules", "rm", "nightly"), "refusing without a terminal", "--yes")
    assert_one_error(cli("schedules", "rm", "nope", "--yes"), "schedule nope not found")
    assert len(client.schedules.list()) == 2
    assert assert_ok(cli("schedules", "rm", "nightly", "--yes")).stdout == "deleted nightly\n"
    assert [s.name for s in client.schedules.list()] == ["weekdays"]


def test_rm_on_a_terminal_takes_no_for_an_answer(
    cli: Cli, client: pulser_ops.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _applied(cli, tmp_path)
    # CliRunner's stdin, and only it, is a terminal (what confirm asks before prompting)
    monkeypatch.setattr(typer.testing._NamedTextIOWrapper, "isatty",
                        lambda self: self.name == "<stdin>")  # fmt: skip
    no = cli("schedules", "rm", "nightly", input="n\n")
    assert no.exit_code == 1 and no.stderr == (
        "Delete schedule nightly (greet, '30 2 * * *' Europe/Paris)? [y/N]:"
        "error: aborted; nothing was changed\n")  # the answer is not echoed in a test
    assert len(client.schedules.list()) == 2
    assert_ok(cli("schedules", "rm", "nightly", input="y\n"))
    assert [s.name for s in client.schedules.list()] == ["weekdays"]


def test_preview_shows_wall_time_and_utc(cli: Cli) -> None:
    shown = assert_ok(cli("schedules", "preview", "0 9 * * mon-fri", "--tz", "Europe/Paris",
                          "-n", "3")).stdout  # fmt: skip
    header, *rows = shown.splitlines()
    assert "LOCAL (Europe/Paris)" in header and "UTC" in header
    assert len(rows) == 3
    for row in rows:
        # 09:00 in Paris is 08:00 UTC in winter, 07:00 in summer; never a weekend
        assert re.match(r"(Mon|Tue|Wed|Thu|Fri) \d{4}-\d\d-\d\d 09:00 +\d{4}-\d\d-\d\d "
                        r"0[78]:00:00 +in ", row), row  # fmt: skip
    utc = assert_ok(cli("schedules", "preview", "@daily")).stdout.splitlines()
    assert len(utc) == 6 and all(" 00:00 " in r and "00:00:00" in r for r in utc[1:])


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["0 x * * *"], 'the hour field cannot be read at "x"'),
        (["* * *"], "expected 5 fields"),
        (["0 0 30 2 *"], "names no time that exists"),
        (["@daily", "--timezone", "Mars/Olympus"], 'unknown time zone "Mars/Olympus"'),
    ],
)
def test_preview_names_what_it_cannot_read(cli: Cli, args: list[str], fragment: str) -> None:
    assert_one_error(cli("schedules", "preview", *args), fragment)


def test_fire_enqueues_what_is_due_and_reports_errors(
    cli: Cli, client: pulser_ops.Client, db_url: str, tmp_path: Path
) -> None:
    _applied(cli, tmp_path)
    assert assert_ok(cli("schedules", "fire")).stderr.strip() == "no schedule is due"
    _due(db_url, "nightly")
    fired = assert_ok(cli("schedules", "fire"))
    match = re.fullmatch(r"nightly  due \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC  run (\S+)\n",
                         fired.stdout)  # fmt: skip
    assert match, fired.stdout
    run = client.runs.get(match[1])
    assert (run.template, run.lane, run.params["name"]) == ("greet", "C", "night")
    assert "fired 1 schedule(s)" in fired.stderr

    listed = assert_ok(cli("schedules", "ls")).stdout
    row = next(r for r in listed.splitlines() if r.startswith("nightly"))
    assert f"{match[1][:8]} " in row and "error" not in row

    # the template's schema changes: weekdays' params no longer fit, and that is reported
    client.templates.upsert({"name": "greet", "params_schema": {
        "type": "object", "required": ["team"], "properties": {"team": {"type": "string"}}}})
    _due(db_url, "weekdays")
    failed = assert_ok(cli("schedules", "fire", "--limit", "5"))
    assert re.match(r"weekdays  due .* UTC  error: invalid params for template greet",
                    failed.stdout), failed.stdout  # fmt: skip
    assert "could not enqueue" in failed.stderr
    row = next(r for r in assert_ok(cli("schedules", "ls")).stdout.splitlines()
               if r.startswith("weekdays"))  # fmt: skip
    assert "error" in row and "invalid params" in row
    assert count(db_url, "runs") == 1


def test_ls_marks_a_schedule_nothing_fired(cli: Cli, db_url: str, tmp_path: Path) -> None:
    _applied(cli, tmp_path)
    _due(db_url, "nightly", "10 minutes")
    row = next(r for r in assert_ok(cli("schedules", "ls")).stdout.splitlines()
               if r.startswith("nightly"))  # fmt: skip
    assert "due 10m ago" in row, row


def _manual_section() -> str:
    manual = (Path(__file__).resolve().parents[2] / "docs" / "OPERATOR_MANUAL.md").read_text()
    return manual.split("\n## Schedules\n", 1)[1].split("\n## ", 1)[0]


def test_the_manuals_example_file_and_commands_work(cli: Cli, db_url: str, tmp_path: Path) -> None:
    """The operator manual's schedules file applies to the starter templates (seed.sql), and its
    preview commands run, so the docs cannot drift from what the control plane accepts."""
    section = _manual_section()
    seed = Path(__file__).resolve().parents[2] / "supabase" / "seed.sql"
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(seed.read_text().encode())  # a file we ship
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    applied = _applied(cli, tmp_path, example)
    names = re.findall(r"^applied (\S+)", applied, re.MULTILINE)
    assert names == ["nightly-report", "health-check", "month-start"]
    assert "applied month-start (paused)" in applied
    commands = section.split("```bash\n", 1)[1].split("```", 1)[0]
    previews = [shlex.split(line.split("#")[0]) for line in commands.splitlines()
                if line.startswith("pulser-ops schedules preview")]  # fmt: skip
    assert len(previews) == 2
    for argv in previews:
        assert len(assert_ok(cli(*argv[1:])).stdout.splitlines()) > 1
