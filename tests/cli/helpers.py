"""Driving the ``pulser-ops`` CLI in tests, and checking how it fails.

Why CliRunner for most tests: it runs the real command code in-process against a real
database, fast; ``tail`` is driven as a real subprocess because it must keep running while
another actor (a simulated worker here) changes the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from click.testing import Result
from typer.testing import CliRunner

import pulser_ops
from pulser_ops.cli import app

#: No ambient configuration may leak into a test.
CLEAN_ENV: dict[str, str | None] = {
    "PULSER_OPS_DATABASE_URL": None,
    "SUPABASE_URL": None,
    "SUPABASE_SERVICE_ROLE_KEY": None,
    "SUPABASE_SECRET_KEY": None,
    "SUPABASE_PUBLISHABLE_KEY": None,
    "SUPABASE_ANON_KEY": None,
    "PULSER_OPS_ACCESS_TOKEN": None,
    "PULSER_OPS_REFRESH_TOKEN": None,
    "PULSER_OPS_MAX_ROWS": None,
    "PULSER_OPS_STORAGE_DIR": None,
    "COLUMNS": "200",
}

GREET = {
    "name": "greet",
    "description": "test template",
    "default_lane": "B",
    "params_schema": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "count": {"type": "integer", "minimum": 1, "maximum": 10},
            "loud": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    },
    "steps": [{"kind": "shell", "name": "say", "command": ["echo", "{{ params.name }}"]}],
    "max_attempts": 1,
}

PULSER_OPS_EXE = str(Path(sys.executable).with_name("pulser-ops"))


class Cli:
    """``cli("runs", "ls")``: run a command with this test's connection in the environment."""

    def __init__(self, env: dict[str, str | None]) -> None:
        self.env = {**CLEAN_ENV, **env}
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return self.runner.invoke(app, list(args), env=self.env, input=input)


def assert_ok(result: Result) -> Result:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.output}"
    return result


def assert_one_error(result: Result, *fragments: str) -> str:
    """Non-zero exit, no traceback, exactly one ``error:`` line on stderr naming the problem."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit | None), repr(result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in result.output
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def count(db_url: str, table: str, where: str = "true") -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(f"select count(*) from public.{table} where {where}").fetchone()
    assert row is not None
    return int(row[0])


def finish(client: pulser_ops.Client, lane: str, status: str = "succeeded", **kw: Any) -> str:
    """Play a worker: claim the next run of ``lane`` and complete it; returns its id."""
    [run] = client.runs.claim("test-worker", lanes=lane)
    client.runs.complete(run.id, "test-worker", run.attempt, status, **kw)
    return str(run.id)


@contextmanager
def tailing(connection: dict[str, str], run_id: str) -> Iterator[subprocess.Popen[str]]:
    """``pulser-ops tail`` as a process, configured only by ``connection`` (environment)."""
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    env.update(connection, COLUMNS="200")
    proc = subprocess.Popen(
        [PULSER_OPS_EXE, "tail", run_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
