"""``pulser-ops enqueue``: params from flags and files, and refusals that enqueue nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pulser_ops
from tests.cli.helpers import Cli, assert_ok, assert_one_error, count


def test_enqueue_merges_file_and_flags_and_parses_json_values(
    cli: Cli, client: pulser_ops.Client, tmp_path: Path
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("name: from-file\ncount: 2\ntags: [a, b]\n")
    result = assert_ok(
        cli(
            "enqueue", "greet",
            "--params-file", str(params),
            "--param", "count=7",        # JSON number, overrides the file
            "-P", "loud=true",           # JSON boolean
            "--lane", "c",               # case-insensitive lane
            "--priority", "5",
            "--idempotency-key", "k-1",
            "--run-after", "2030-01-02T03:04:05Z",
            "--json",
        )
    )  # fmt: skip
    shown = json.loads(result.stdout)
    run = client.runs.get(shown["id"])
    assert run.params == {"name": "from-file", "count": 7, "loud": True, "tags": ["a", "b"]}
    assert (run.lane, run.priority, run.idempotency_key) == ("C", 5, "k-1")
    assert run.available_at.isoformat() == "2030-01-02T03:04:05+00:00"


def test_plain_output_starts_with_the_run_id_and_strings_stay_strings(
    cli: Cli, client: pulser_ops.Client
) -> None:
    result = assert_ok(cli("enqueue", "greet", "-P", "name=ops team", "-P", 'tags=["x"]'))
    run_id = result.stdout.split()[0]
    run = client.runs.get(run_id)
    assert run.params == {"name": "ops team", "tags": ["x"]}
    assert run.lane == "B"  # the template's default lane


def test_same_idempotency_key_gives_the_same_run(cli: Cli, db_url: str) -> None:
    first = assert_ok(cli("enqueue", "greet", "-P", "name=a", "--idempotency-key", "once"))
    second = assert_ok(cli("enqueue", "greet", "-P", "name=a", "--idempotency-key", "once"))
    assert first.stdout.split()[0] == second.stdout.split()[0]
    assert count(db_url, "runs") == 1


def test_db_url_option_beats_the_environment(db_url: str, client: pulser_ops.Client) -> None:
    cli = Cli({"PULSER_OPS_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert_ok(cli("enqueue", "greet", "-P", "name=x", "--db-url", db_url))
    assert count(db_url, "runs") == 1


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["nope", "-P", "name=x"], ["unknown template nope"]),
        (["greet", "-P", "name=3"], ["invalid params", "params.name"]),  # 3 parses as a number
        (["greet", "-P", "name=x", "-P", "bogus=1"], ["params.bogus"]),
        (["greet"], ["invalid params", "name"]),  # required param missing
        (["greet", "-P", "name=x", "--lane", "E"], ["unknown lane 'E'"]),
        (["greet", "-P", "novalue"], ["--param: expected key=value"]),
        (["greet", "-P", "name=x", "--run-after", "tomorrow"], ["--run-after"]),
        (["greet", "-P", "name=x", "--priority", "1000"], ["priority"]),
    ],
)
def test_bad_input_is_one_line_and_enqueues_nothing(
    cli: Cli, db_url: str, args: list[str], fragments: list[str]
) -> None:
    assert_one_error(cli("enqueue", *args), *fragments)
    assert count(db_url, "runs") == 0


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("p.json", '{"name": "x",', "not valid JSON"),
        ("p.yaml", "name: [unclosed\n", "not valid YAML"),
        ("p.yaml", "- just\n- a list\n", "expected an object"),
        ("missing.json", None, "cannot read it (No such file or directory)"),
        ("latin1.yaml", b"name: caf\xe9\n", "cannot read it (not UTF-8 text)"),
    ],
)
def test_malformed_params_file_is_one_line_and_enqueues_nothing(
    cli: Cli, db_url: str, tmp_path: Path, name: str, content: str | bytes | None, fragment: str
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    assert_one_error(cli("enqueue", "greet", "--params-file", str(path)), fragment, name)
    assert count(db_url, "runs") == 0


@pytest.mark.parametrize(
    "args",
    [
        ["enqueue", "greet", "--params-file", "missing.json"],
        ["templates", "apply", "missing.yaml"],
    ],
    ids=["enqueue", "templates-apply"],
)
def test_a_file_that_cannot_be_read_fails_before_any_database_is_started(
    tmp_path: Path, args: list[str]
) -> None:
    """No URL: the embedded database would be started (initdb on a first run) only to be told
    of a typo. The file is read first, and the home stays untouched."""
    home = tmp_path / "home"
    cli = Cli({"PULSER_OPS_HOME": str(home)})
    missing = [str(tmp_path / a) if a.startswith("missing") else a for a in args]
    assert_one_error(cli(*missing), "No such file or directory")
    assert not home.exists()
