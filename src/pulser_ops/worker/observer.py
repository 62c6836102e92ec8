"""What the worker reports as it works, for metrics and tracing; it never changes behaviour."""
from __future__ import annotations
from typing import Literal, Protocol

RunOutcome = Literal["succeeded", "failed", "cancelled", "retried", "released", "lease_lost", "abandoned"]

class WorkerObserver(Protocol):
    def runs_claimed(self, lane: str, template: str, queue_wait_seconds: float) -> None:
        """One call per claimed run; queue_wait = claimed_at - max(created_at, run_after)."""
    def run_finished(self, lane: str, template: str, outcome: RunOutcome, duration_seconds: float) -> None:
        """One call per run this worker stops holding, after the completion is recorded (or the lease is lost)."""
    def step_finished(self, step_kind: str, outcome: str, duration_seconds: float) -> None:
        """One call per executed step; outcome = succeeded | failed | cancelled | timeout."""
    def slots(self, used: int, total: int) -> None:
        """Whenever the number of runs held changes."""

class NullObserver:
    def runs_claimed(self, lane: str, template: str, queue_wait_seconds: float) -> None: ...
    def run_finished(self, lane: str, template: str, outcome: RunOutcome, duration_seconds: float) -> None: ...
    def step_finished(self, step_kind: str, outcome: str, duration_seconds: float) -> None: ...
    def slots(self, used: int, total: int) -> None: ...
