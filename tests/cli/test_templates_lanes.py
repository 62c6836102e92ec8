"""``pulser-ops templates ...`` and ``pulser-ops lanes ...`` against a real database."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

import pulser_ops
from tests.cli.helpers import Cli, assert_ok, assert_one_error, count

TWO_TEMPLATES = """
- name: nightly-report
  description: builds the [nightly] report
  default_lane: C
  max_attempts: 2
  params_schema: {type: object, properties: {day: {type: string}}}
  steps:
    - {kind: shell, name: build, command: [echo, build]}
- name: ping
  steps:
    - {kind: http, name: call, method: GET, url: "https://example.com"}
"""


def test_apply_ls_show(cli: Cli, client: pulser_ops.Client, tmp_path: Path) -> None:
    path = tmp_path / "templates.yaml"
    path.write_text(TWO_TEMPLATES)
    result = assert_ok(cli("templates", "apply", str(path)))
    assert "applied nightly-report" in result.stdout and "applied ping" in result.stdout
    assert client.templates.get("nightly-report").default_lane == "C"

    listing = assert_ok(cli("templates", "ls")).stdout
    assert "nightly-report" in listing and "builds the [nightly] report" in listing
    names = {t["name"] for t in json.loads(assert_ok(cli("templates", "ls", "-f", "json")).stdout)}
    assert names == {"greet", "nightly-report", "ping"}

    shown = assert_ok(cli("templates", "show", "nightly-report")).stdout
    assert "max attempts" in shown and '"day"' in shown and '"build"' in shown
    as_json = json.loads(assert_ok(cli("templates", "show", "ping", "--json")).stdout)
    assert as_json["steps"][0]["kind"] == "http"

    single = tmp_path / "one.json"
    single.write_text(json.dumps({**as_json, "description": "updated", "max_attempts": 5}))
    assert_ok(cli("templates", "apply", str(single)))
    assert client.templates.get("ping").max_attempts == 5


def test_show_unknown_template(cli: Cli) -> None:
    assert_one_error(cli("templates", "show", "nope"), "nope")


def _templates(db_url: str) -> list[tuple[str, str]]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("select name, updated_at::text from public.run_templates order by 1")
        return [(r[0], r[1]) for r in rows.fetchall()]


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("t.yaml", "- name: a\n  steps: [\n", "not valid YAML"),
        ("t.json", "[{]", "not valid JSON"),
        ("t.yaml", "[]\n", "no templates"),
        ("t.yaml", "- 42\n", "expected an object"),
        ("t.yaml", "- steps: []\n", "name"),  # name missing
        ("t.yaml", "- {name: x, default_lane: Q}\n", "default_lane"),
        # a bad second template: the first one must not be written either
        ("t.yaml", "- {name: fine}\n- {name: BAD NAME}\n", "BAD NAME"),
        ("t.yaml", "- {name: fine}\n- {name: two, steps: [{kind: ftp}]}\n", "steps[0].kind"),
        ("t.yaml", "- {name: fine}\n- {name: two, colour: red}\n", "colour"),
        ("t.yaml", "- {name: same}\n- {name: same}\n", "twice"),
        # only the control plane knows this one: the first template must not be written either
        ("t.yaml", "- {name: fine, params_schema: {type: array}}\n", "params_schema"),
        ("t.yaml", "- {name: fine}\n- {name: two, params_schema: {type: array}}\n",
         "templates[1] (two)"),
    ],
)
def test_bad_template_file_changes_nothing(
    cli: Cli, db_url: str, tmp_path: Path, name: str, content: str, fragment: str
) -> None:
    before = _templates(db_url)
    path = tmp_path / name
    path.write_text(content)
    assert_one_error(cli("templates", "apply", str(path)), fragment)
    assert _templates(db_url) == before


def test_lanes_pause_resume_and_limit(cli: Cli, client: pulser_ops.Client) -> None:
    client.runs.create("greet", {"name": "x"}, lane="B")
    assert "lane B: paused, no limit" in assert_ok(cli("lanes", "pause", "b")).stdout
    assert client.runs.claim("w", lanes="B") == []  # paused lanes are not claimed
    listing = assert_ok(cli("lanes", "ls")).stdout
    b_row = next(line for line in listing.splitlines() if line.startswith("B "))
    assert "paused" in b_row and " 1 " in b_row
    assert "lane B: active" in assert_ok(cli("lanes", "resume", "B")).stdout
    assert "max 3 running" in assert_ok(cli("lanes", "set", "B", "--max-running", "3")).stdout
    assert next(x for x in client.lanes.list() if x.id == "B").max_running == 3
    assert "no limit" in assert_ok(cli("lanes", "set", "B", "--no-limit")).stdout
    assert next(x for x in client.lanes.list() if x.id == "B").max_running is None


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["pause", "E"], "unknown lane 'E'"),
        (["set", "A"], "exactly one of"),
        (["set", "A", "--max-running", "2", "--no-limit"], "exactly one of"),
        (["set", "A", "--max-running", "-1"], "max_running"),
    ],
)
def test_bad_lane_commands_change_nothing(
    cli: Cli, db_url: str, args: list[str], fragment: str
) -> None:
    assert_one_error(cli("lanes", *args), fragment)
    assert count(db_url, "lanes", "paused or max_running is not null") == 0
