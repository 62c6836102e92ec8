"""Counters and histograms that only one process knows, made once per registry.

The database knows how many runs are queued; only the process that enqueued a run knows it did,
only the worker knows how long a step took, only the sweeper knows what it swept. Each such
metric is created here on first use, in the registry the process serves (the default one unless
told otherwise, e.g. by a test), so two workers in one test process never collide.

Naming follows Prometheus: base units (seconds), ``_total`` counters, labels of low cardinality
(``lane``, ``template``, ``outcome``, ``step_kind``), never a run id.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ..models import Run, ScheduleFire, SweepResult

M = TypeVar("M")

#: Seconds: from a few milliseconds (a warm claim) to hours (a long run or a deep backlog).
WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
                1800, 3600, 7200, 21600)
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
                    1800, 3600, 7200, 21600, 86400)

_lock = threading.Lock()
#: Metrics made so far, per registry (weakly: a test's registry goes with the test).
_made: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def default_registry() -> CollectorRegistry:
    from prometheus_client import REGISTRY

    return REGISTRY


def family(registry: CollectorRegistry | None, kind: Callable[..., M], name: str, doc: str,
           labels: Sequence[str], **kw: Any) -> M:
    """The metric ``name`` of ``registry`` (default: the process's), created on first use."""
    reg = registry if registry is not None else default_registry()
    with _lock:
        made = _made.setdefault(reg, {})
        found = made.get(name)
        if found is None:
            found = kind(name, doc, list(labels), registry=reg, **kw)
            made[name] = found
    return found


# --- the SDK: runs enqueued ---------------------------------------------------------------------


def count_enqueued(runs: Iterable[Run]) -> None:
    """``pulser_runs_enqueued_total{lane,template}``, in processes that export metrics.

    Only when ``prometheus_client`` is already imported (the process serves metrics: a worker
    with ``--metrics-port``, ``pulser-ops ui``, an app with its own ``/metrics``), so a one-shot
    ``pulser-ops enqueue`` does not pay the import. A repeated idempotency key returns the
    existing run, which counts again: the counter says what enqueue calls returned."""
    if "prometheus_client" not in sys.modules:
        return
    from prometheus_client import Counter

    counter = family(None, Counter, "pulser_runs_enqueued",
                     "Runs enqueued by this process.", ("lane", "template"))
    for run in runs:
        counter.labels(run.lane, run.template).inc()


# --- the sweeper ----------------------------------------------------------------------------------


class SweeperMetrics:
    """``pulser_sweeper_{requeued,failed,cancelled}_total{lane}``, the sweeps themselves, and
    the schedules fired (``pulser_sweeper_schedules_fired_total{schedule}``, and
    ``pulser_sweeper_schedule_errors_total{schedule}`` for a due time that enqueued nothing).
    A schedule's name is a label of low cardinality: an admin writes each one."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import Counter, Histogram

        self._swept = {
            action: family(registry, Counter, f"pulser_sweeper_{action}",
                           f"Runs whose lease expired that the sweeper {action}.", ("lane",))
            for action in ("requeued", "failed", "cancelled")
        }
        self._sweeps = family(registry, Histogram, "pulser_sweeper_sweep_duration_seconds",
                              "How long one sweep (every batch) took.", (),
                              buckets=DURATION_BUCKETS)
        self._errors = family(
            registry, Counter, "pulser_sweeper_errors", "Sweeps that failed (no database, ...).", ()
        )
        self._fired = family(registry, Counter, "pulser_sweeper_schedules_fired",
                             "Due times of schedules whose run the sweeper enqueued.",
                             ("schedule",))
        self._schedule_errors = family(
            registry, Counter, "pulser_sweeper_schedule_errors",
            "Due times of schedules that enqueued no run (the error is kept on the schedule).",
            ("schedule",))  # fmt: skip

    def swept(self, results: Iterable[SweepResult]) -> None:
        for r in results:
            self._swept[r.action].labels(r.lane or "").inc()

    def sweep_took(self, seconds: float) -> None:
        self._sweeps.observe(seconds)

    def sweep_failed(self) -> None:
        self._errors.inc()

    def fired(self, fires: Iterable[ScheduleFire]) -> None:
        for f in fires:
            counter = self._fired if f.run_id is not None else self._schedule_errors
            counter.labels(f.schedule).inc()


# --- alerts ---------------------------------------------------------------------------------------


class AlertMetrics:
    """``pulser_alert_notices_total{rule,notice}`` and the deliveries of notifications."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import Counter

        self._notices = family(registry, Counter, "pulser_alert_notices",
                               "Alert notices (firing, reminder, resolved) by rule.",
                               ("rule", "notice"))
        self._deliveries = family(registry, Counter, "pulser_alert_deliveries",
                                  "Notification deliveries by outcome (sent, retried, dropped).",
                                  ("outcome",))

    def notice(self, rule: str, notice: str) -> None:
        self._notices.labels(rule, notice).inc()

    def delivery(self, outcome: str) -> None:
        self._deliveries.labels(outcome).inc()
