"""One sweep pass: call ``sweep_expired_runs`` in bounded batches, then fire the schedules that
are due (``enqueue_due_schedules``), and say what happened.

Batches keep each statement well under Supabase's API statement timeout (8 s by default);
the SQL itself decides, row by row and under lock, whether a run is requeued, failed or
cancelled, and which schedule is due (each due time once, whoever else fires them), so this
file holds no queue logic of its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC

from pulser_ops import Client
from pulser_ops.metrics.process import SweeperMetrics
from pulser_ops.models import ScheduleFire, SweepResult

#: Schedules fired by one ``enqueue_due_schedules`` call (the SQL allows up to 1000).
SCHEDULE_BATCH = 100
#: Names a pass's line spells out before it says "and N more".
NAMES_SHOWN = 5


@dataclass
class SweepReport:
    requeued: int = 0
    failed: int = 0
    cancelled: int = 0
    batches: int = 0
    oldest_stuck_seconds: float = 0.0
    elapsed_seconds: float = 0.0
    results: list[SweepResult] = field(default_factory=list)
    #: the schedules this pass fired: each with its run, or why none was enqueued
    fired: list[ScheduleFire] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.requeued + self.failed + self.cancelled

    def add(self, batch: list[SweepResult]) -> None:
        self.batches += 1
        self.results.extend(batch)
        for r in batch:
            if r.action == "requeued":
                self.requeued += 1
            elif r.action == "failed":
                self.failed += 1
            else:
                self.cancelled += 1
            self.oldest_stuck_seconds = max(self.oldest_stuck_seconds, r.stuck_for_seconds or 0.0)

    @property
    def schedule_errors(self) -> list[ScheduleFire]:
        return [f for f in self.fired if f.run_id is None]

    def schedule_error_lines(self) -> list[str]:
        """One line per schedule that could not enqueue its run: which, when, why."""
        return [
            f"schedule {f.schedule} (due {f.due_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC): "
            + " ".join((f.error or "?").split())
            for f in self.schedule_errors
        ]

    def summary(self) -> str:
        if self.total == 0:
            line = f"sweep: nothing expired ({self.elapsed_seconds * 1000:.0f} ms)"
        else:
            line = (
                f"sweep: requeued {self.requeued}, failed {self.failed}, cancelled "
                f"{self.cancelled} in {self.batches} batch(es), "
                f"{self.elapsed_seconds * 1000:.0f} ms; the oldest had gone "
                f"{self.oldest_stuck_seconds:.1f} s without a heartbeat"
            )
        enqueued = [f.schedule for f in self.fired if f.run_id is not None]
        if enqueued:
            line += f"; fired {len(enqueued)} schedule(s): {_names(enqueued)}"
        if self.schedule_errors:
            errors = _names([f.schedule for f in self.schedule_errors])
            line += f"; {len(self.schedule_errors)} schedule(s) could not enqueue: {errors}"
        return line


def _names(names: list[str]) -> str:
    more = len(names) - NAMES_SHOWN
    return ", ".join(names[:NAMES_SHOWN]) + (f" and {more} more" if more > 0 else "")


def fire_schedules(
    client: Client, *, max_calls: int = 10, metrics: SweeperMetrics | None = None
) -> list[ScheduleFire]:
    """Fire every due schedule: ``enqueue_due`` until a call comes back short (a fired schedule
    moves on to its next time, so none fires twice) or ``max_calls``."""
    fired: list[ScheduleFire] = []
    for _ in range(max_calls):
        batch = client.schedules.enqueue_due(SCHEDULE_BATCH)
        fired += batch
        if metrics is not None:
            metrics.fired(batch)
        if len(batch) < SCHEDULE_BATCH:
            break
    return fired


def sweep_once(
    client: Client,
    *,
    batch: int = 500,
    max_batches: int = 1000,
    metrics: SweeperMetrics | None = None,
    schedules: bool = True,
) -> SweepReport:
    """Sweep until a batch comes back short (nothing more expired) or ``max_batches``, then
    (with ``schedules``) fire the due schedules; ``metrics`` counts each batch's runs by lane
    as it comes back, and the schedules fired."""
    report = SweepReport()
    started = time.monotonic()
    for _ in range(max_batches):
        results = client.runs.sweep(limit=batch)
        report.add(results)
        if metrics is not None:
            metrics.swept(results)
        if len(results) < batch:
            break
    report.elapsed_seconds = time.monotonic() - started
    if metrics is not None:
        metrics.sweep_took(report.elapsed_seconds)
    if schedules:
        report.fired = fire_schedules(client, metrics=metrics)
    return report
