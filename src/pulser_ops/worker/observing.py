"""The worker's side of the observer contract (observer.py): calls that cannot hurt it.

An observer is someone else's code (metrics, tracing); whatever it raises is logged once and
swallowed, so a broken exporter never fails or slows a run.
"""

from __future__ import annotations

import logging
import threading

from .observer import NullObserver, RunOutcome, WorkerObserver

log = logging.getLogger("pulser_ops.worker")


class GuardedObserver:
    def __init__(self, inner: WorkerObserver | None) -> None:
        self._inner: WorkerObserver = inner if inner is not None else NullObserver()
        self._logged = threading.Event()

    def _failed(self, e: Exception) -> None:
        if not self._logged.is_set():
            self._logged.set()
            log.warning("worker observer failed (%r); its later failures are not logged", e)

    def runs_claimed(self, lane: str, template: str, queue_wait_seconds: float) -> None:
        try:
            self._inner.runs_claimed(lane, template, queue_wait_seconds)
        except Exception as e:
            self._failed(e)

    def run_finished(
        self, lane: str, template: str, outcome: RunOutcome, duration_seconds: float
    ) -> None:
        try:
            self._inner.run_finished(lane, template, outcome, duration_seconds)
        except Exception as e:
            self._failed(e)

    def step_finished(self, step_kind: str, outcome: str, duration_seconds: float) -> None:
        try:
            self._inner.step_finished(step_kind, outcome, duration_seconds)
        except Exception as e:
            self._failed(e)

    def slots(self, used: int, total: int) -> None:
        try:
            self._inner.slots(used, total)
        except Exception as e:
            self._failed(e)
