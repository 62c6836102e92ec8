"""A worker's own counters and histograms: a Prometheus :class:`WorkerObserver`.

``pulser-ops worker --metrics-port P`` builds one and passes it to ``Worker(observer=...)``;
the worker calls it as runs are claimed and end and as steps finish. What only this process
knows (how long a run waited before this worker took it, how long each step took) lives here;
the fleet's gauges come from the database (:mod:`.fleet`).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

from ..worker.observer import RunOutcome
from .process import DURATION_BUCKETS, WAIT_BUCKETS, family

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger("pulser_ops.metrics")

#: Outcomes that end a run (pulser_runs_finished_total); "retried" counts in
#: pulser_runs_retried_total, the others in pulser_runs_released_total{reason}.
FINISHED = frozenset({"succeeded", "failed", "cancelled"})


class PrometheusObserver:
    """Thread-safe (prometheus_client's metrics are) and never raises into the worker."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry
        self._claimed = family(r, Counter, "pulser_runs_claimed",
                               "Runs this worker claimed.", ("lane", "template"))
        self._wait = family(r, Histogram, "pulser_run_queue_wait_seconds",
                            "Seconds a run waited, ready, before this worker claimed it.",
                            ("lane",), buckets=WAIT_BUCKETS)
        self._finished = family(r, Counter, "pulser_runs_finished",
                                "Runs this worker finished, by outcome.",
                                ("lane", "template", "outcome"))
        self._retried = family(r, Counter, "pulser_runs_retried",
                               "Runs whose failure this worker recorded and that were queued "
                               "again for a retry.", ("lane",))
        self._released = family(r, Counter, "pulser_runs_released",
                                "Runs this worker let go without finishing them (released on "
                                "shutdown, lease lost, abandoned).", ("lane", "reason"))
        self._duration = family(r, Histogram, "pulser_run_duration_seconds",
                                "Seconds from claim to the end of the attempt, by outcome.",
                                ("lane", "template", "outcome"),
                                buckets=DURATION_BUCKETS)
        self._step = family(r, Histogram, "pulser_step_duration_seconds",
                            "Seconds each step took, by step kind and outcome.",
                            ("step_kind", "outcome"), buckets=DURATION_BUCKETS)
        self._slots = family(r, Gauge, "pulser_worker_process_slots",
                             "This worker's run slots (concurrency), used or free.",
                             ("state",))
        self._complained = threading.Event()

    def _failed(self, what: str, e: Exception) -> None:
        if not self._complained.is_set():
            self._complained.set()
            log.warning("metrics: %s failed (%r); further failures are not logged", what, e)

    def runs_claimed(self, lane: str, template: str, queue_wait_seconds: float) -> None:
        try:
            self._claimed.labels(lane, template).inc()
            self._wait.labels(lane).observe(max(0.0, queue_wait_seconds))
        except Exception as e:
            self._failed("runs_claimed", e)

    def run_finished(
        self, lane: str, template: str, outcome: RunOutcome, duration_seconds: float
    ) -> None:
        try:
            if outcome in FINISHED:
                self._finished.labels(lane, template, outcome).inc()
            elif outcome == "retried":
                self._retried.labels(lane).inc()
            else:
                self._released.labels(lane, outcome).inc()
            self._duration.labels(lane, template, outcome).observe(max(0.0, duration_seconds))
        except Exception as e:
            self._failed("run_finished", e)

    def step_finished(self, step_kind: str, outcome: str, duration_seconds: float) -> None:
        try:
            self._step.labels(step_kind, outcome).observe(max(0.0, duration_seconds))
        except Exception as e:
            self._failed("step_finished", e)

    def slots(self, used: int, total: int) -> None:
        try:
            self._slots.labels("used").set(used)
            self._slots.labels("free").set(max(0, total - used))
        except Exception as e:
            self._failed("slots", e)
