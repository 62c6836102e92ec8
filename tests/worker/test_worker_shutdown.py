"""SIGTERM / SIGINT handling of a real worker process: runs are completed or released,
never lost, and a second signal stops at once."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path

from pulser_ops import Client
from tests.worker.conftest import WorkerProcess, template, wait_for


def _long_template(client: Client, seconds: str) -> None:
    client.templates.upsert(
        template(
            "job",
            [
                {
                    "kind": "shell",
                    "name": "work",
                    "command": f'echo started; sleep {seconds}; echo "finished"',
                    "kill_grace_seconds": 2,
                }
            ],
            max_attempts=2,
            lease_seconds=30,
        )
    )


def _running(client: Client, run_id: object) -> bool:
    return any(e.kind == "log" and "started" in e.message for e in client.events.list(run_id))


def test_sigterm_lets_a_short_step_finish_and_completes_it(
    client: Client, spawn_worker: Callable[..., WorkerProcess]
) -> None:
    _long_template(client, "1.5")
    run = client.runs.create("job")
    other = client.runs.create("job")  # must not be claimed once stopping
    w = spawn_worker("--lanes", "A", "--concurrency", "1", "--shutdown-grace-seconds", "30")
    wait_for("the step to start", lambda: _running(client, run.id) or _running(client, other.id))
    first, second = (run, other) if _running(client, run.id) else (other, run)

    w.signal(signal.SIGTERM)
    assert w.wait() == 0

    assert client.runs.get(first.id).status == "succeeded"
    untouched = client.runs.get(second.id)
    assert (untouched.status, untouched.attempt) == ("queued", 0)
    assert {x.id: x.status for x in client.workers.list()}[w.worker_id] == "stopped"


def test_sigterm_after_grace_releases_the_run_without_using_an_attempt(
    client: Client, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    # Long until the marker exists: the released run keeps its template version (editing the
    # template would not reach it), so the second worker finds the marker instead.
    marker = tmp_path / "fast"
    _long_template(client, f'"$(test -e {marker} && echo 0 || echo 300)"')
    run = client.runs.create("job")
    w = spawn_worker("--lanes", "A", "--shutdown-grace-seconds", "0.5")
    wait_for("the step to start", lambda: _running(client, run.id))

    w.signal(signal.SIGTERM)
    assert w.wait() == 0

    back = client.runs.get(run.id)
    assert (back.status, back.attempt, back.worker_id) == ("queued", 0, None)
    kinds = [e.kind for e in client.events.list(run.id)]
    assert "released" in kinds and "succeeded" not in kinds
    (step,) = client.runs.steps(run.id)
    assert step.status == "cancelled"
    assert "started" in (client.artifacts.get(run.id, "work.log").inline_text or "")

    # The released run is claimable again and finishes on the next worker.
    marker.touch()
    w2 = spawn_worker("--lanes", "A", "--burst", "--poll-seconds", "0.2")
    assert w2.wait() == 0
    done = client.runs.get(run.id)
    assert (done.status, done.attempt) == ("succeeded", 1)


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_second_signal_stops_at_once_kills_the_step_and_releases(
    client: Client, spawn_worker: Callable[..., WorkerProcess], exec_dir: Path
) -> None:
    client.templates.upsert(
        template(
            "stubborn",
            [
                {
                    "kind": "shell",
                    "name": "work",
                    # Ignores SIGTERM (and so does its sleep): only SIGKILL stops it.
                    "command": "trap '' TERM; echo $$ > \"$PULSER_TEST_EXEC_DIR/pid\"; "
                    "echo started; sleep 300",
                    "env": {"PULSER_TEST_EXEC_DIR": str(exec_dir)},
                    "kill_grace_seconds": 600,
                }
            ],
            max_attempts=2,
        )
    )
    run = client.runs.create("stubborn")
    w = spawn_worker("--lanes", "A", "--shutdown-grace-seconds", "600")
    wait_for("the step to start", lambda: _running(client, run.id))
    pid = int((exec_dir / "pid").read_text())
    try:
        w.signal(signal.SIGTERM)
        wait_for("the worker to start draining", lambda: "no new claims" in w.output())
        assert w.proc.poll() is None  # still waiting for the step (grace is 10 minutes)
        w.signal(signal.SIGINT)
        # Far below the 600 s grace (and the step's 600 s kill grace): it does not wait.
        assert w.wait(timeout=30) == 130

        back = client.runs.get(run.id)
        assert (back.status, back.attempt) == ("queued", 0)
        assert "released" in [e.kind for e in client.events.list(run.id)]
        wait_for("the step's process to be killed", lambda: not _alive(pid), timeout=10)
    finally:
        if _alive(pid):  # never leave the stubborn step behind, even when the test fails
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
