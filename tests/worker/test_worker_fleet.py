"""Several worker processes on one queue: every run is executed exactly once.

Executions are counted from a side effect of the handler itself (one line per execution
in a file per run, see ``handlers.record``), not from the queue's own bookkeeping. One run
in ten fails its first attempt on purpose, so those runs execute twice (attempts 1 and 2)
and the no-overlap check has something to check.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from pulser_ops import Client
from tests.worker.conftest import WorkerProcess, executions, template

RUNS = 1000


@pytest.mark.parametrize("workers", [2, pytest.param(10, marks=pytest.mark.slow)])
def test_fleet_executes_every_run_exactly_once(
    workers: int,
    client: Client,
    spawn_worker: Callable[..., WorkerProcess],
    exec_dir: Path,
) -> None:
    client.templates.upsert(
        template(
            "rec",
            [{"kind": "python", "name": "rec", "handler": "record"}],
            max_attempts=3,
            retry_backoff_seconds=0,
            retry_backoff_max_seconds=0,
        )
    )
    lanes = "ABCD"
    created = client.runs.create_many(
        {
            "template": "rec",
            "params": {"n": i, "hold": 0.002, "fail_first": i % 10 == 0},
            "lane": lanes[i % 4],
        }
        for i in range(RUNS)
    )
    ids = {str(r.id) for r in created}

    fleet = [
        spawn_worker(
            "--lanes",
            "A,B,C,D",
            "--concurrency",
            "4",
            "--burst",
            "--poll-seconds",
            "0.2",
            "--lease-seconds",
            "30",
        )
        for _ in range(workers)
    ]
    for w in fleet:
        assert w.wait(timeout=600) == 0, w.output()[-3000:]

    runs = list(client.runs.iter(template="rec"))
    assert len(runs) == RUNS
    assert Counter(r.status for r in runs) == {"succeeded": RUNS}
    flaky = {str(r.id) for r in runs if r.params["fail_first"]}
    assert all(r.attempt == (2 if str(r.id) in flaky else 1) for r in runs)

    done = executions(exec_dir)
    assert set(done) == ids  # every run ran...
    for run_id, rows in done.items():  # ...exactly once per attempt it was given
        want = [1, 2] if run_id in flaky else [1]
        assert sorted(attempt for attempt, *_ in rows) == want, (run_id, rows)
        spans = sorted((started, ended) for _, _, started, ended in rows)
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start, f"executions of {run_id} overlapped: {rows}"
    # The last execution was by the worker the queue says completed the run.
    by_run = {str(r.id): r.worker_id for r in runs}
    assert all(max(rows)[1] == by_run[run_id] for run_id, rows in done.items())
    assert len({w for rows in done.values() for _, w, *_ in rows}) >= 2  # work was shared
