"""Chaos: worker processes die by SIGKILL mid-load while the sweeper runs, and PostgreSQL
restarts under load. Nothing is lost, nothing runs twice at the same time.

Executions are proven by the handler's own side effect (a start and an end line per
execution, in a file per run), not by the queue's bookkeeping.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pulser_ops import Client
from tests.support.pgcluster import PgCluster
from tests.worker.conftest import REPO, WorkerProcess, template, wait_for

LEASE = 5
SWEEP_INTERVAL = 1.0


@pytest.fixture
def sweeper(db_url: str, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSER_OPS_", "SUPABASE_"))}
    env.update(PULSER_OPS_DATABASE_URL=db_url, PYTHONPATH=str(REPO))
    with (tmp_path / "sweeper.log").open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sweeper",
                "--loop",
                "--interval",
                str(SWEEP_INTERVAL),
                "--quiet",
            ],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(30)


def chaos_template(client: Client, name: str, **extra: Any) -> None:
    """A template of one ``chaos`` step (it records each execution), retried at once."""
    settings: dict[str, Any] = {
        "lease_seconds": LEASE,
        "retry_backoff_seconds": 0,
        "retry_backoff_max_seconds": 0,
        **extra,
    }
    client.templates.upsert(
        template(name, [{"kind": "python", "name": "chaos", "handler": "chaos"}], **settings)
    )


def _executions(exec_dir: Path) -> dict[str, list[tuple[str, int, str, float]]]:
    out: dict[str, list[tuple[str, int, str, float]]] = {}
    for f in exec_dir.iterdir():
        rows = []
        for line in f.read_text().splitlines():
            what, attempt, worker, at = line.split()
            rows.append((what, int(attempt), worker, float(at)))
        out[f.name] = rows
    return out


def _intervals(
    rows: list[tuple[str, int, str, float]], killed_at: dict[str, float]
) -> list[tuple[float, float, str]]:
    """(start, end, worker) per execution; an execution cut by SIGKILL ends at the kill."""
    starts = {(a, w): t for what, a, w, t in rows if what == "start"}
    ends = {(a, w): t for what, a, w, t in rows if what == "end"}
    out = []
    for key, t0 in starts.items():
        t1 = ends.get(key)
        if t1 is None:
            assert key[1] in killed_at, f"execution {key} never ended although its worker lived"
            t1 = killed_at[key[1]]
        out.append((t0, t1, key[1]))
    return sorted(out)


@pytest.mark.slow
def test_chaos_sigkill_workers_while_the_sweeper_runs(
    client: Client,
    spawn_worker: Callable[..., WorkerProcess],
    exec_dir: Path,
    sweeper: subprocess.Popen[bytes],
    db_url: str,
) -> None:
    rng = random.Random(20261124)
    chaos_template(client, "chaos", max_attempts=3)
    runs = client.runs.create_many(
        {
            "template": "chaos",
            "lane": "ABCD"[i % 4],
            "params": {"hold": 0.4 if i % 20 == 0 else 0.01},
            # one run in eight has a single attempt: if its worker dies, it must fail clearly
            "max_attempts": 1 if i % 8 == 0 else 3,
        }
        for i in range(2000)
    )
    ids = {str(r.id) for r in runs}
    args = ("--concurrency", "4", "--poll-seconds", "0.2", "--heartbeat-seconds", "1")
    workers = {f"w{i}": spawn_worker(*args, worker_id=f"w{i}") for i in range(10)}
    killed_at: dict[str, float] = {}
    kills = rng.randint(2, 5)

    def terminal() -> int:
        with psycopg.connect(db_url) as conn:
            row = conn.execute(
                "select count(*) from public.runs where status in ('succeeded', 'failed', 'cancelled')"
            ).fetchone()
        return int(row[0]) if row else 0

    def busy_workers() -> list[str]:
        with psycopg.connect(db_url) as conn:
            rows = conn.execute(
                "select distinct worker_id from public.runs where status = 'running'"
            ).fetchall()
        return [w for (w,) in rows if w in workers and w not in killed_at]

    for k in range(kills):
        # Kill while the fleet is busy, spread over the load, always a worker holding runs.
        wait_for("the fleet to make progress", lambda k=k: terminal() >= 150 * (k + 1), timeout=300)
        victim = rng.choice(wait_for("a worker holding runs", busy_workers, timeout=60, every=0.05))
        workers[victim].proc.send_signal(signal.SIGKILL)
        killed_at[victim] = time.time()
        workers[victim].proc.wait()
        new_id = f"r{k + 1}"
        workers[new_id] = spawn_worker(*args, worker_id=new_id)
    wait_for("every run to end", lambda: terminal() == 2000, timeout=600, every=0.5)

    final = {str(r.id): r for r in client.runs.get_many(ids)}
    assert {r.status for r in final.values()} <= {"succeeded", "failed"}
    executions = _executions(exec_dir)
    with psycopg.connect(db_url) as conn:
        swept = conn.execute(
            "select run_id::text, at, data ->> 'old_worker_id' from public.run_events where kind = 'swept'"
        ).fetchall()
    sweeps_by_run: dict[str, int] = defaultdict(int)
    for run_id, at, old_worker in swept:
        sweeps_by_run[run_id] += 1
        assert old_worker in killed_at, f"only dead workers' runs are swept (swept {old_worker})"
        # Lease plus one sweep interval after the worker died (plus scheduling slack).
        waited = at.timestamp() - killed_at[old_worker]
        assert waited <= LEASE + SWEEP_INTERVAL + 3.0, (
            f"run {run_id} waited {waited:.1f}s after its worker died"
        )
    for run_id, run in final.items():
        rows = executions.get(run_id, [])
        spans = _intervals(rows, killed_at)
        for (_, end, w1), (start, _, w2) in itertools.pairwise(spans):
            assert start >= end, f"run {run_id}: {w2} started before {w1}'s execution ended"
        started = len(spans)
        # Attempts match what happened: one per claim; a claim by a worker that died before
        # the handler started shows as a sweep without an execution.
        assert started <= run.attempt <= started + sweeps_by_run[run_id], (
            run_id,
            run.attempt,
            started,
        )
        assert run.attempt <= run.max_attempts
        if run.status == "failed":
            assert run.attempt == run.max_attempts and run.error_class == "lease_expired"
            assert "stopped heartbeating" in (run.error or "")
        else:
            assert rows and rows[-1][0] == "end", f"succeeded run {run_id} has a finished execution"
    assert sum(sweeps_by_run.values()) >= 1, (
        "the kills hit running runs (the test exercised recovery)"
    )


def test_postgres_restart_mid_load(
    client: Client,
    spawn_worker: Callable[..., WorkerProcess],
    exec_dir: Path,
    sweeper: subprocess.Popen[bytes],
    db_url: str,
    pg_cluster: PgCluster,
) -> None:
    chaos_template(client, "pgr", max_attempts=5)
    runs = client.runs.create_many(
        {"template": "pgr", "params": {"hold": 0.02}} for _ in range(400)
    )
    ids = [r.id for r in runs]
    for i in range(3):
        spawn_worker("--concurrency", "2", "--poll-seconds", "0.2", worker_id=f"p{i}")

    def done() -> int:
        return sum(1 for r in client.runs.get_many(ids) if r.is_terminal)

    wait_for("some runs to finish before the restart", lambda: done() >= 40, timeout=120)
    pg_cluster.restart(down_seconds=2.0)
    wait_for(
        "every run to finish after the restart", lambda: done() == len(ids), timeout=300, every=0.5
    )
    assert {r.status for r in client.runs.get_many(ids)} == {"succeeded"}
    assert sweeper.poll() is None, "the sweeper rode out the restart"


#: Lease of the restart test's runs: long enough that a heartbeat late by a restart and the
#: pool's reconnect is no excuse, short enough that a run a worker gave up on is swept (and
#: failed: one attempt only) while the test waits.
RESTART_LEASE = 8


def _db_rows(db_url: str, query: str) -> list[tuple[Any, ...]]:
    """Read through a fresh connection: the test's own view must not depend on the code under
    test riding out the restarts."""
    with psycopg.connect(db_url, connect_timeout=5) as conn:
        return conn.execute(query.encode()).fetchall()


@pytest.mark.slow
def test_repeated_subsecond_restarts_cost_no_finished_run(
    durable_commits: str,
    client: Client,
    spawn_worker: Callable[..., WorkerProcess],
    exec_dir: Path,
    sweeper: subprocess.Popen[bytes],
    db_url: str,
    pg_cluster: PgCluster,
) -> None:
    """Sub-second crash restarts (``pg_ctl restart -m immediate``) under load, every run with a
    single attempt and every worker alive throughout: a worker must record what it finished
    (retrying until the database answers), keep heartbeating its long runs, and pick up runs
    whose claim committed as the server died. So every run succeeds, runs once, and keeps
    every line it logged."""
    lines = 3
    chaos_template(client, "flaky-db", max_attempts=1, lease_seconds=RESTART_LEASE)
    # A few long runs, claimed first, hold their lease across the restarts: their heartbeats
    # must resume, or they are swept.
    runs = client.runs.create_many(
        {
            "template": "flaky-db",
            "params": {"hold": 1.5 * RESTART_LEASE if i in (0, 1, 2) else 0.02, "lines": lines},
            "priority": 1 if i in (0, 1, 2) else 0,
        }
        for i in range(480)
    )
    ids = {str(r.id) for r in runs}
    args = ("--concurrency", "4", "--poll-seconds", "0.2", "--heartbeat-seconds", "1")
    workers = [spawn_worker(*args, worker_id=f"pg{i}") for i in range(3)]

    def terminal() -> int:
        [(n,)] = _db_rows(
            db_url,
            "select count(*) from public.runs where status in ('succeeded', 'failed', 'cancelled')",
        )
        return int(n)

    for k in range(4):
        wait_for("the fleet to make progress", lambda k=k: terminal() >= 40 + 70 * k, timeout=120)
        pg_cluster.restart(down_seconds=0.3)
    wait_for("every run to end", lambda: terminal() == len(ids), timeout=300, every=0.5)

    assert all(w.proc.poll() is None for w in workers), "every worker lived through the restarts"
    assert sweeper.poll() is None, "the sweeper rode out the restarts"
    rows = _db_rows(
        db_url,
        "select id::text, status, attempt, error_class, error from public.runs"
        " where status <> 'succeeded'",
    )
    assert rows == [], f"runs of live workers that did not succeed: {rows[:10]}"
    executions = _executions(exec_dir)
    twice = {r: e for r, e in executions.items() if [x[0] for x in e] != ["start", "end"]}
    assert not twice, f"runs not executed exactly once: {list(twice.items())[:5]}"
    assert set(executions) == ids, "every run was executed"
    logged = dict(
        _db_rows(
            db_url,
            "select run_id::text, count(*) from public.run_events where kind = 'log'"
            " group by run_id",
        )
    )
    short = {r: logged.get(r, 0) for r in ids if logged.get(r, 0) != lines}
    assert not short, f"runs whose log lines were lost (or doubled): {list(short.items())[:10]}"
    swept = _db_rows(db_url, "select run_id::text from public.run_events where kind = 'swept'")
    assert swept == [], "no live worker's run was swept"
