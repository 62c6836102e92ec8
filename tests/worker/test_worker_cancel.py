"""Cancelling a run that sits in a long shell step, with a real worker process."""

from __future__ import annotations

import signal
from collections.abc import Callable

from pulser_ops import Client
from tests.worker.conftest import WorkerProcess, template, wait_for

HEARTBEAT = 1.0


def test_cancel_halts_a_long_shell_step_and_keeps_partial_artifacts(
    client: Client, spawn_worker: Callable[..., WorkerProcess]
) -> None:
    client.templates.upsert(
        template(
            "long",
            [
                {
                    "kind": "shell",
                    "name": "work",
                    "command": 'i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.2; done',
                    "kill_grace_seconds": 5,
                },
                {"kind": "shell", "name": "after", "command": ["true"]},
            ],
            lease_seconds=30,
        )
    )
    run = client.runs.create("long")
    w = spawn_worker("--lanes", "A", "--poll-seconds", "0.2", "--heartbeat-seconds", str(HEARTBEAT))
    wait_for(
        "the step to print",
        lambda: any("tick 2" in e.message for e in client.events.list(run.id) if e.kind == "log"),
    )

    requested = client.runs.cancel(run.id, "operator changed their mind")
    done = wait_for("the run to end", lambda: (r := client.runs.get(run.id)).is_terminal and r)

    assert done.status == "cancelled"
    assert done.cancel_requested_at == requested.cancel_requested_at
    assert done.finished_at is not None and requested.cancel_requested_at is not None
    # Noticed at the next heartbeat, SIGTERM stops the loop at once: well within one
    # heartbeat interval plus the time to record it (the step itself would never end).
    assert (done.finished_at - requested.cancel_requested_at).total_seconds() < HEARTBEAT + 3
    assert "operator changed their mind" in (done.error or "")
    steps = client.runs.steps(run.id)
    assert [(s.name, s.status) for s in steps] == [("work", "cancelled"), ("after", "skipped")]
    log = client.artifacts.get(run.id, "work.log")
    assert "tick 0" in (log.inline_text or "") and "tick 2" in (log.inline_text or "")
    kinds = [e.kind for e in client.events.list(run.id)]
    assert kinds.index("cancel_requested") < kinds.index("cancelling") < kinds.index("cancelled")

    w.signal(signal.SIGTERM)
    assert w.wait() == 0


def test_cancel_is_checked_between_steps(
    client: Client, spawn_worker: Callable[..., WorkerProcess]
) -> None:
    client.templates.upsert(
        template(
            "two-steps",
            [
                # time.sleep: this handler does not notice cancellation by itself
                {"kind": "python", "name": "first", "handler": "record"},
                {"kind": "shell", "name": "second", "command": "exec sleep 60"},
            ],
            lease_seconds=120,
        )
    )
    run = client.runs.create("two-steps", {"hold": 3})
    # Heartbeats every 30 s: only the check between the steps can notice the cancel in time.
    w = spawn_worker("--lanes", "A", "--poll-seconds", "0.2", "--heartbeat-seconds", "30")
    wait_for(
        "the first step",
        lambda: [s for s in client.runs.steps(run.id) if s.name == "first"],
    )
    client.runs.cancel(run.id, "not needed")
    done = wait_for(
        "the run to end", lambda: (r := client.runs.get(run.id)).is_terminal and r, timeout=20
    )

    assert done.status == "cancelled"
    assert [(s.name, s.status) for s in client.runs.steps(run.id)] == [
        ("first", "succeeded"),
        ("second", "skipped"),
    ]
    assert "cancelling" in [e.kind for e in client.events.list(run.id)]
    w.signal(signal.SIGTERM)
    assert w.wait() == 0
