"""One sweep: call ``sweep_expired_runs`` in bounded batches and say what happened.

Batches keep each statement well under Supabase's API statement timeout (8 s by default);
the SQL itself decides, row by row and under lock, whether a run is requeued, failed or
cancelled, so this file holds no queue logic of its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pulser_ops import Client
from pulser_ops.metrics.process import SweeperMetrics
from pulser_ops.models import SweepResult


@dataclass
class SweepReport:
    requeued: int = 0
    failed: int = 0
    cancelled: int = 0
    batches: int = 0
    oldest_stuck_seconds: float = 0.0
    elapsed_seconds: float = 0.0
    results: list[SweepResult] = field(default_factory=list)

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

    def summary(self) -> str:
        if self.total == 0:
            return f"sweep: nothing expired ({self.elapsed_seconds * 1000:.0f} ms)"
        return (
            f"sweep: requeued {self.requeued}, failed {self.failed}, cancelled {self.cancelled} "
            f"in {self.batches} batch(es), {self.elapsed_seconds * 1000:.0f} ms; the oldest had "
            f"gone {self.oldest_stuck_seconds:.1f} s without a heartbeat"
        )


def sweep_once(
    client: Client,
    *,
    batch: int = 500,
    max_batches: int = 1000,
    metrics: SweeperMetrics | None = None,
) -> SweepReport:
    """Sweep until a batch comes back short (nothing more expired) or ``max_batches``;
    ``metrics`` counts each batch's runs by lane as it comes back."""
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
    return report
