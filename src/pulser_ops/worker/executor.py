"""Execute one claimed run: its template's steps in order, then complete, release or let go.

How a run ends is decided here, from two inputs: the step outcomes, and the reason the
run was asked to stop (recorded on the :class:`HeldRun` by the heartbeat, the run timeout
or the shutdown logic):

- lease lost  → never complete or release (someone else owns the run); a ``lease_lost``
  event says why;
- shutdown    → ``release`` (the attempt is given back) unless every step already finished;
- cancel      → steps stopped, partial artifacts kept, run completed ``cancelled``;
- timeout     → ``failed`` with ``error_class = 'timeout'``;
- a failed step → ``failed`` with its error, error class and retryability;
- otherwise   → ``succeeded`` with a result summarising the steps.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..client import Client
from ..daemon_threads import DaemonThreads
from ..errors import LeaseLost, NotFound, PulserOpsError, TransportError
from ..models import Completion, CompletionEvent, RunStatus, StepRecord
from ..steps import (
    HandlerRegistry,
    StepFailed,
    StepOptions,
    StepOutcome,
    StepSpec,
    StepSpecError,
    run_step,
)
from ..steps.outcome import failed, utcnow
from .completer import Completer
from .context import RunContext
from .events import EventSink
from .held import HeldRun
from .observer import NullObserver, WorkerObserver
from .templates import TemplateCache
from .textsafe import safe_json, safe_text

log = logging.getLogger("pulser_ops.worker")

Ending = Literal["succeeded", "failed", "cancelled", "released", "lease_lost", "abandoned"]

#: Step outputs bigger than this are replaced by a note (the full data is in artifacts).
MAX_OUTPUT_BYTES = 32 * 1024
#: Step-level timeout codes that count as a run timeout.
TIMEOUT_CODES = frozenset({"step_timeout", "timeout"})
#: How long the last step's "running" row waits. A step that ends first needs none: its final
#: row (with the step's start time) goes out with the completion, one round trip less per
#: run. A longer step shows as running this much later, which nobody watching can tell.
RUNNING_ROW_DELAY_SECONDS = 0.05


def bounded(value: Any, limit: int = MAX_OUTPUT_BYTES) -> Any:
    """``value`` made storable (``textsafe``) if its JSON fits in ``limit`` bytes, else a small
    note saying it did not."""
    value = safe_json(value)
    size = len(json.dumps(value).encode())
    return value if size <= limit else {"truncated": True, "json_bytes": size}


@dataclass(frozen=True)
class StepSummary:
    name: str
    kind: str
    status: str
    exit_code: int | None
    duration_seconds: float
    error_class: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "exit_code": self.exit_code,
            "duration_seconds": round(self.duration_seconds, 3),
            "error_class": self.error_class,
        }


class RunExecutor:
    def __init__(
        self,
        client: Client,
        sink: EventSink,
        templates: TemplateCache,
        registry: HandlerRegistry,
        options: StepOptions,
        worker_id: str,
        workroot: Path | None = None,
        on_cancel: Callable[[HeldRun], None] | None = None,
        observer: WorkerObserver | None = None,  # [issue 17 observer]
    ) -> None:
        self._on_cancel = on_cancel or (lambda h: h.stop("cancel", "cancel requested"))
        self._observer = observer or NullObserver()
        self._client = client
        self._sink = sink
        self._templates = templates
        self._registry = registry
        self._options = options
        self._worker_id = worker_id
        self._workroot = workroot
        # A completion waits out a database restart; only a forced stop gives up on it.
        self._completer = Completer(client, worker_id, give_up=options.kill_now)
        self._bookkeeping = DaemonThreads("pulser-step-records")

    def close(self) -> None:
        """Let the step-record threads end (each run already waited for its own records)."""
        self._bookkeeping.close()

    # --- entry point ------------------------------------------------------------------------

    def execute(self, held: HeldRun) -> Ending:
        """Run every step of ``held`` and settle the run; never raises for a run's failure."""
        run = held.run
        try:
            loaded = self._templates.get(run.template, run.template_version)
        except NotFound:
            return self._complete(
                held,
                "failed",
                error=f"template {run.template!r} does not exist",
                error_class="template_not_found",
                retryable=False,
            )
        except StepSpecError as e:
            return self._complete(
                held,
                "failed",
                error=f"template {run.template!r} has invalid steps: {e.message}",
                error_class=e.code,
                retryable=False,
            )
        except PulserOpsError as e:
            log.warning("run %s: cannot load template %s: %s", held.run_id, run.template, e)
            return self._release(held, f"worker could not load the template: {e}")

        timer = self._start_timer(held, loaded.template.timeout_seconds)
        # A fresh name under the temp root; RunContext creates the directory on first use.
        root = Path(self._workroot or tempfile.gettempdir())
        workdir = root / f"pulser-{held.run_id[:8]}-a{held.attempt}-{secrets.token_hex(8)}"
        try:
            return self._run_steps(held, loaded.steps, workdir)
        finally:
            if timer is not None:
                timer.cancel()
            shutil.rmtree(workdir, ignore_errors=True)

    # --- steps ------------------------------------------------------------------------------

    def _start_timer(self, held: HeldRun, timeout: int | None) -> threading.Timer | None:
        if not timeout:
            return None
        left = max(0.0, timeout - (time.monotonic() - held.claimed_monotonic))
        timer = threading.Timer(
            left, held.stop, ("timeout", f"run timed out after {timeout}s (template timeout)")
        )
        timer.daemon = True
        timer.start()
        return timer

    def _record_running(
        self, held: HeldRun, idx: int, spec: StepSpec, done: threading.Event | None
    ) -> None:
        """The step's "running" row; for the last step (``done`` given), only if it is still
        running after RUNNING_ROW_DELAY_SECONDS."""
        if done is not None and done.wait(RUNNING_ROW_DELAY_SECONDS):
            return
        self._record(held, idx, spec, "running")

    def _record(self, held: HeldRun, idx: int, spec: StepSpec, status: str) -> None:
        self._record_row(held, StepRecord(idx=idx, name=spec.name, kind=spec.kind, status=status))

    def _record_row(self, held: HeldRun, row: StepRecord) -> None:
        """``record_run_step``; a refused fence means the lease is gone."""
        if held.taken_over or held.reason == "lease_lost":
            return
        try:
            self._client.runs.record_step(
                held.run_id,
                self._worker_id,
                held.attempt,
                row.idx,
                row.name,
                row.kind,
                row.status,
                exit_code=row.exit_code,
                error=row.error,
                output=row.output,
            )
        except LeaseLost as e:
            if not held.taken_over:
                held.stop("lease_lost", str(e))
        except PulserOpsError as e:  # bookkeeping trouble must not fail the user's run
            log.warning("run %s: step %s not recorded: %s", held.run_id, row.name, e)

    def _write_rows(self, held: HeldRun, rows: list[StepRecord]) -> None:
        """Write step rows held back for the completion, when there will be none (a last step
        that ended before its "running" row was due is then stamped with this write's time)."""
        for row in rows:
            self._record_row(held, row)
        rows.clear()

    def _run_steps(self, held: HeldRun, steps: list[StepSpec], workdir: Path) -> Ending:
        ctx = RunContext(held, self._client, self._sink, self._worker_id, workdir)
        summaries: list[StepSummary] = []
        failure: StepOutcome | None = None
        last_result: Any = None
        next_idx = 0
        # A step's final row waits here: the next step writes it before it starts, and the
        # last one goes out with the completion (one round trip less per run).
        held_back: list[StepRecord] = []
        for idx, spec in enumerate(steps):
            if idx > 0:
                self._between_steps(held)
            if held.reason is not None:
                break
            self._write_rows(held, held_back)
            next_idx = idx + 1
            # The step starts without waiting for its "running" row (a round trip that would
            # sit between the claim and the user's code); its final row waits for it below, so
            # the two upserts land in order. A refused fence stops the step like a heartbeat.
            step_done = threading.Event()
            started = self._bookkeeping.call(
                functools.partial(
                    self._record_running,
                    held,
                    idx,
                    spec,
                    step_done if idx == len(steps) - 1 else None,
                )
            )
            outcome = self._run_one(spec, ctx)
            step_done.set()
            started.result()
            status, error, error_class = outcome.status, outcome.error, outcome.error_class
            if outcome.status == "cancelled" and held.reason == "timeout":
                status, error, error_class = "failed", held.detail, "timeout"
            elif outcome.status == "cancelled" and held.reason == "shutdown":
                error = f"worker {self._worker_id} shutting down; the run goes back to the queue"
            # [issue 17 observer] one call per executed step
            timed_out = error_class in TIMEOUT_CODES
            self._observer.step_finished(
                spec.kind, "timeout" if timed_out else status, outcome.duration_seconds
            )
            held_back.append(
                StepRecord(
                    idx=idx,
                    name=spec.name,
                    kind=spec.kind,
                    status=status,
                    exit_code=outcome.exit_code,
                    error=safe_text(error) if error else error,
                    output=bounded(
                        {
                            "result": outcome.result,
                            "error_class": outcome.error_class,
                            "artifacts": list(outcome.artifacts),
                        }
                    ),
                    started_at=outcome.started_at,
                )
            )
            summaries.append(
                StepSummary(
                    spec.name,
                    spec.kind,
                    status,
                    outcome.exit_code,
                    outcome.duration_seconds,
                    error_class,
                )
            )
            if not outcome.ok:
                failure = outcome
                break
            last_result = outcome.result
        all_done = failure is None and len(summaries) == len(steps)
        return self._settle(
            held, steps, next_idx, summaries, failure, last_result, all_done, held_back
        )

    def _between_steps(self, held: HeldRun) -> None:
        """Check for a cancel request (and renew the lease) before starting the next step,
        so a cancel is honoured between steps without waiting for the next heartbeat."""
        if held.reason is not None:
            return
        try:
            beat = self._client.runs.heartbeat(held.run_id, self._worker_id, held.attempt)
        except LeaseLost as e:
            if not held.taken_over:
                held.stop("lease_lost", str(e))
            return
        except PulserOpsError as e:  # the heartbeat thread will tell us soon enough
            log.warning("run %s: check between steps failed: %s", held.run_id, e)
            return
        if beat.cancel_requested:
            self._on_cancel(held)

    def _run_one(self, spec: StepSpec, ctx: RunContext) -> StepOutcome:
        """``run_step``, turning a bug in an executor into a failed step instead of a run
        that silently waits for the sweeper."""
        started = utcnow()
        try:
            return run_step(spec, ctx, self._registry, self._options)
        except Exception as e:
            log.exception("run %s: step %s crashed the executor", ctx.run_id, spec.name)
            return failed(started, StepFailed(f"worker error: {e!r}"), error_class="worker_error")

    @staticmethod
    def _skipped(steps: list[StepSpec], start: int) -> list[StepRecord]:
        return [
            StepRecord(idx=i, name=steps[i].name, kind=steps[i].kind, status="skipped")
            for i in range(start, len(steps))
        ]

    # --- the end of the run -----------------------------------------------------------------

    def _settle(
        self,
        held: HeldRun,
        steps: list[StepSpec],
        next_idx: int,
        summaries: list[StepSummary],
        failure: StepOutcome | None,
        last_result: Any,
        all_done: bool,
        rows: list[StepRecord],
    ) -> Ending:
        if held.taken_over:
            return "released"
        reason = held.reason
        if reason == "lease_lost":
            return self._lost(held)
        if reason == "shutdown" and not all_done:
            self._write_rows(held, rows)
            return self._release(held, held.detail or "worker shutting down")
        result = {"steps": [s.as_json() for s in summaries], "result": bounded(last_result)}
        if all_done:
            return self._complete(held, "succeeded", result=result, steps=rows)
        rows = rows + self._skipped(steps, next_idx)
        if reason == "timeout":
            return self._complete(
                held, "failed", result=result, error=held.detail, error_class="timeout", steps=rows
            )
        if reason == "cancel" or (failure is not None and failure.status == "cancelled"):
            return self._cancelled(held, result, rows)
        assert failure is not None
        error_class = failure.error_class
        if error_class in TIMEOUT_CODES:
            error_class = "timeout"
        failed_step = summaries[-1].name if summaries else "?"
        return self._complete(
            held,
            "failed",
            result=result,
            error=f"step {failed_step!r} failed: {failure.error or 'no error message'}",
            error_class=error_class,
            retryable=failure.retryable,
            steps=rows,
        )

    def _cancelled(self, held: HeldRun, result: dict[str, Any], rows: list[StepRecord]) -> Ending:
        reason = held.detail
        with contextlib.suppress(PulserOpsError):
            reason = self._client.runs.get(held.run_id).cancel_reason or reason
        return self._complete(
            held,
            "cancelled",
            result=result,
            error=f"cancelled: {reason}" if reason else "cancelled",
            error_class="cancelled",
            steps=rows,
        )

    def _complete(
        self,
        held: HeldRun,
        status: Literal["succeeded", "failed", "cancelled"],
        *,
        result: Any = None,
        error: str | None = None,
        error_class: str | None = None,
        retryable: bool = True,
        steps: list[StepRecord] | None = None,
        carry: bool = True,
    ) -> Ending:
        if held.reason == "lease_lost" or not held.begin_settle("run"):
            return self._settle_lost_or_released(held)
        # Its log goes with the completion, right before its terminal event.
        carried = self._sink.take_run(held.run_id) if carry else []
        try:
            done = self._completer.complete(
                Completion(
                    run_id=held.run.id,
                    attempt=held.attempt,
                    status=status,
                    result=safe_json(result),
                    error=safe_text(error[:60000]) if error else None,
                    error_class=error_class,
                    retryable=retryable,
                    steps=steps or None,
                    events=[
                        CompletionEvent(kind=e.kind, message=e.message, level=e.level, data=e.data)
                        for e in carried
                    ]
                    or None,
                )
            )
        except TransportError as e:  # the Completer gave up waiting: the worker is forced to stop
            self._sink.put_back(carried)
            log.error("run %s: not completed (%s); the sweeper will requeue it", held.run_id, e)
            return "abandoned"
        except Exception as e:  # refused (PulserOpsError), or a value it could not even send
            self._sink.put_back(carried)
            if carried:
                # One of its events may be what was refused: they go on their own (the sink
                # splits out a bad one), then the completion goes again without them.
                self._sink.flush_run(held.run_id)
                return self._complete(
                    held,
                    status,
                    result=result,
                    error=error,
                    error_class=error_class,
                    retryable=retryable,
                    steps=steps,
                    carry=False,
                )
            if status == "failed" and result is None:
                log.error("run %s: could not complete: %s", held.run_id, e)
                return "abandoned"
            # e.g. a result the database refused: record that instead of losing the run
            # (its step rows go on their own, so a bad one cannot block the completion).
            self._write_rows(held, list(steps or []))
            return self._complete(
                held,
                "failed",
                error=f"could not store the run's outcome ({status}): {e}",
                error_class="invalid_result",
                retryable=False,
                carry=False,
            )
        if not done.ok:
            self._sink.put_back(carried)
            held.stop("lease_lost", done.detail or "the lease moved on before completion")
            return self._settle_lost_or_released(held)
        held.retried = done.status == RunStatus.QUEUED  # [issue 17 observer]
        return status

    def _settle_lost_or_released(self, held: HeldRun) -> Ending:
        return "released" if held.taken_over else self._lost(held)

    def _lost(self, held: HeldRun) -> Ending:
        if held.taken_over:
            return "released"
        self._sink.add(
            held.run_id,
            "lease_lost",
            "warn",
            f"worker {self._worker_id} lost its lease on attempt {held.attempt} and abandoned "
            f"the run without completing it: {held.detail or 'heartbeat refused'}",
            {"worker_id": self._worker_id, "attempt": held.attempt, "detail": held.detail},
            attempt=held.attempt,
            worker_id=self._worker_id,
        )
        self._sink.flush_run(held.run_id)
        return "lease_lost"

    def _release(self, held: HeldRun, reason: str) -> Ending:
        self._sink.flush_run(held.run_id)
        if not held.begin_settle("run"):
            return self._settle_lost_or_released(held)
        return release_run(self._client, self._worker_id, held, reason, self._lost)


def release_run(
    client: Client,
    worker_id: str,
    held: HeldRun,
    reason: str,
    on_lost: Callable[[HeldRun], Ending],
) -> Ending:
    """Give the run back to the queue (the attempt is not used up)."""
    try:
        client.runs.release(held.run_id, worker_id, held.attempt, reason)
    except LeaseLost as e:
        held.stop("lease_lost", str(e))
        return on_lost(held)
    except PulserOpsError as e:
        log.error("run %s: release failed (%s); the sweeper will requeue it", held.run_id, e)
        return "abandoned"
    return "released"
