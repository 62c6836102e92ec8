"""Leases: heartbeats survive a CPU-bound handler; a stale worker cannot complete a run."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest

from pulser_ops import Client
from tests.worker.conftest import WorkerProcess, template, wait_for

LEASE = 5  # the smallest lease the control plane accepts


@pytest.mark.slow
def test_cpu_bound_handler_keeps_heartbeating_and_is_never_swept(
    client: Client, spawn_worker: Callable[..., WorkerProcess]
) -> None:
    client.templates.upsert(
        template(
            "hog",
            [{"kind": "python", "name": "spin", "handler": "spin"}],
            lease_seconds=LEASE,
            max_attempts=3,
        )
    )
    run = client.runs.create("hog", {"seconds": 3 * LEASE})
    w = spawn_worker("--lanes", "A", "--poll-seconds", "0.2", "--burst")
    wait_for("the claim", lambda: client.runs.get(run.id).status == "running")

    swept = []
    beats = set()
    while not (r := client.runs.get(run.id)).is_terminal:
        swept += [s for s in client.runs.sweep() if s.run_id == run.id]
        if r.heartbeat_at is not None:
            beats.add(r.heartbeat_at)
        time.sleep(0.5)

    assert w.wait() == 0
    assert swept == []
    done = client.runs.get(run.id)
    assert (done.status, done.attempt, done.sweep_count) == ("succeeded", 1, 0)
    assert done.result["result"]["iterations"] > 0
    # The run spanned three leases, so it was only kept alive by several heartbeats.
    assert len(beats) >= 3
    assert "swept" not in [e.kind for e in client.events.list(run.id)]


def test_stale_worker_whose_lease_was_swept_cannot_complete(
    client: Client, spawn_worker: Callable[..., WorkerProcess]
) -> None:
    client.templates.upsert(
        template(
            "nap",
            [{"kind": "python", "name": "nap", "handler": "sleepy"}],
            lease_seconds=LEASE,
            max_attempts=3,
        )
    )
    run = client.runs.create("nap", {"seconds": 2})
    w = spawn_worker("--lanes", "A", "--poll-seconds", "0.2", worker_id="stale")
    wait_for("the claim", lambda: client.runs.get(run.id).status == "running")

    # Freeze the worker (no heartbeats) until its lease expires and the sweeper takes the run.
    os.kill(w.proc.pid, signal.SIGSTOP)
    try:
        wait_for("the sweep", lambda: [s for s in client.runs.sweep() if s.run_id == run.id])
        (taken,) = client.runs.claim("thief", lanes="A")  # attempt 2 now belongs to "thief"
        assert taken.id == run.id and taken.attempt == 2
    finally:
        os.kill(w.proc.pid, signal.SIGCONT)

    lost = wait_for(
        "the lease_lost event",
        lambda: [e for e in client.events.list(run.id) if e.kind == "lease_lost"],
    )
    assert lost[0].worker_id == "stale" and lost[0].attempt == 1
    current = client.runs.get(run.id)
    assert (current.status, current.worker_id, current.attempt) == ("running", "thief", 2)
    # Nothing the stale worker did after waking up counts: no completion, no step of attempt 2.
    kinds = [e.kind for e in client.events.list(run.id)]
    assert not {"succeeded", "failed", "cancelled", "released"} & set(kinds)
    assert all(s.attempt == 1 for s in client.runs.steps(run.id))

    client.runs.complete(run.id, "thief", 2, "succeeded", result={"by": "thief"})
    assert client.runs.get(run.id).result == {"by": "thief"}
    w.signal(signal.SIGTERM)
    assert w.wait() == 0
    assert "lease_lost 1" in w.output()
