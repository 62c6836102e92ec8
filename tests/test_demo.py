"""The README's demo, end to end: embedded PostgreSQL from nothing, two workers, the sweeper,
a killed worker, a cancel — and an exit code that says whether every run ended as it should."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from pulser_ops import embedded
from tests.support.dirs import reachable_temp_dir

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_on_a_fresh_embedded_database() -> None:
    # As root, the embedded server runs as the `postgres` OS user, which must reach the home.
    base = reachable_temp_dir("pulser-ops-demo-")
    home = base / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSER_OPS_", "SUPABASE_"))}
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pulser_ops.cli", "demo", "--home", str(home)],
            cwd=base, env=env, capture_output=True, text=True, timeout=240,
        )
        assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
        assert "demo passed" in out.stdout
        assert re.search(r"The Ops Control Room: http://127\.0\.0\.1:\d+/", out.stdout)
        assert re.search(r"pulser-ops demo: 10 runs in \d+\.\d+s", out.stdout)
        assert "was killed mid-run" in out.stdout
        # What the summary claims is what the database holds.
        url = embedded.ensure_database(home)
        with psycopg.connect(url) as conn:
            rows = dict(conn.execute(
                "select template, string_agg(status || ':' || attempt, ',' order by created_at)"
                " from public.runs group by template"
            ).fetchall())
            swept = conn.execute(
                "select count(*) from public.runs where template = 'slow-step' and sweep_count >= 1"
                " and status = 'succeeded'"
            ).fetchone()
        assert rows["long-task"] == "cancelled:1"
        assert rows["always-fails"] == "failed:2"
        assert rows["flaky"] == "succeeded:2"
        assert set(rows["hello"].split(",")) == {"succeeded:1"}
        assert swept == (1,), "the killed worker's run was swept and finished by the other worker"
        files = list((home / "storage").rglob("*"))
        assert not [f for f in files if f.is_file() and f.stat().st_size == 0]
    finally:
        embedded.stop(home)
        if (home / "pg").is_symlink():  # the cluster went outside the home (see placement)
            shutil.rmtree((home / "pg").resolve(), ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)
