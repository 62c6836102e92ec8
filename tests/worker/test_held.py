"""The worker's map of held runs when one run is held by two attempts for a moment."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from pulser_ops import Run
from pulser_ops.worker.held import HeldRun, HeldRuns


def _run(run_id: uuid.UUID, attempt: int) -> Run:
    now = datetime.now(UTC)
    return Run(id=run_id, template="t", lane="A", status="running", attempt=attempt,
               max_attempts=3, lease_seconds=60, available_at=now, created_at=now,
               updated_at=now, worker_id="w")


def test_the_thread_of_an_earlier_attempt_does_not_forget_the_later_one() -> None:
    # A failure retried at once: the loop claims attempt 2 while attempt 1's thread is still
    # settling (resending a completion whose reply was lost), then attempt 1's thread ends.
    run_id = uuid.uuid4()
    held = HeldRuns()
    first, second = HeldRun(_run(run_id, 1)), HeldRun(_run(run_id, 2))
    held.add(first)
    held.add(second)
    held.remove(first)
    assert [(h.run_id, h.attempt) for h in held.snapshot()] == [(str(run_id), 2)]
    held.remove(second)
    assert len(held) == 0 and held.wait_empty(0)
