"""How a run ends, decided in one pure function: no database, no clock, no threads.

Two things decide it: what the steps did (their outcomes, in order), and why the run was asked
to stop, if it was (the stop reason the heartbeat, the run timeout or the shutdown path
recorded on the run: ``cancel``, ``lease_lost``, ``timeout``, ``shutdown``). The rules, in the
order they apply:

- the shutdown path already released the run → nothing more to do (``TakenOver``);
- lease lost   → never complete or release: someone else owns the run (``LetGo``);
- the template could not be used → failed, not retryable (missing, invalid steps), or released
  when it could not be read at all (the database was away: another worker may do better);
- shutdown     → released, the attempt given back, unless every step already finished;
- every step succeeded → ``succeeded``, with a result that summarises the steps;
- timeout      → ``failed`` with ``error_class = 'timeout'``;
- cancel (or a step that reports itself cancelled) → ``cancelled``, partial work kept;
- a failed step → ``failed`` with its error, its error class and its retryability.

The worker turns the answer into calls (``executor.RunExecutor``); the table of cases is tested
without a database in ``tests/worker/test_ending.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from ..calls import step_row_item
from ..steps import StepOutcome
from .held import StopReason
from .textsafe import clean_json, json_text, safe_json, safe_text

#: Step outputs bigger than this are replaced by a note (the full data is in artifacts).
MAX_OUTPUT_BYTES = 32 * 1024
#: Step-level error classes that count as a run timeout.
TIMEOUT_CODES = frozenset({"step_timeout", "timeout"})
#: A completion's error is cut to this many characters (the control plane takes 64 KiB).
MAX_ERROR_CHARS = 60000

FinalStatus = Literal["succeeded", "failed", "cancelled"]


def bounded(value: Any, limit: int = MAX_OUTPUT_BYTES) -> Any:
    """``value`` made storable (``textsafe``) if its JSON fits in ``limit`` bytes (UTF-8), else
    a small note saying it did not."""
    text = clean_json(value)
    if text is None:
        value = safe_json(value)
        text = json_text(value)
    size = len(text) if text.isascii() else len(text.encode())
    return value if size <= limit else {"truncated": True, "json_bytes": size}


@dataclass(frozen=True)
class StepRef:
    """A step of the run's template, as far as its ending is concerned."""

    name: str
    kind: str


@dataclass(frozen=True)
class TemplateProblem:
    """Why the run's template could not be used: ``missing`` (no such template), ``invalid``
    (its steps do not parse; ``code`` is the error class) or ``unavailable`` (it could not be
    read, e.g. the database was away)."""

    kind: Literal["missing", "invalid", "unavailable"]
    message: str
    code: str = ""


@dataclass(frozen=True, slots=True)
class Row:
    """A ``run_steps`` row the worker writes (with ``record_run_step``, or with the completion)."""

    idx: int
    name: str
    kind: str
    status: str
    exit_code: int | None = None
    error: str | None = None
    output: Any = None
    #: When the step started, for a row first written with the completion.
    started_at: datetime | None = None

    def item(self) -> dict[str, Any]:
        """As a completion carries it."""
        return step_row_item(
            self.idx,
            self.name,
            self.kind,
            self.status,
            self.exit_code,
            self.error,
            self.output,
            self.started_at,
        )


# --- the answers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Complete:
    """Record the run as finished (``failed`` may still be retried by the control plane)."""

    status: FinalStatus
    result: Any = None
    error: str | None = None
    error_class: str | None = None
    retryable: bool = True
    #: Step rows not written yet: they go with the completion.
    steps: tuple[Row, ...] = ()


@dataclass(frozen=True)
class Release:
    """Give the run back to the queue without using up its attempt."""

    reason: str
    #: Step rows to write before the run is released.
    steps: tuple[Row, ...] = ()


@dataclass(frozen=True)
class LetGo:
    """The lease is gone: neither complete nor release; say so in the run's timeline."""

    detail: str


@dataclass(frozen=True)
class TakenOver:
    """The shutdown path released the run itself; the run's own code does nothing more."""


Ending = Complete | Release | LetGo | TakenOver


# --- step rows --------------------------------------------------------------------------------


def step_status(
    outcome: StepOutcome, stop: StopReason | None
) -> tuple[str, str | None, str | None]:
    """(status, error, error_class) of a step's row: a step stopped by the run's timeout
    failed with a timeout (it did not choose to be cancelled)."""
    if outcome.status == "cancelled" and stop == "timeout":
        return "failed", None, "timeout"
    return outcome.status, outcome.error, outcome.error_class


def step_row(
    idx: int,
    step: StepRef,
    outcome: StepOutcome,
    stop: StopReason | None,
    detail: str,
    worker_id: str,
) -> Row:
    """The final ``run_steps`` row of a step that ran."""
    status, error, _ = step_status(outcome, stop)
    if outcome.status == "cancelled" and stop == "timeout":
        error = detail
    elif outcome.status == "cancelled" and stop == "shutdown":
        error = f"worker {worker_id} shutting down; the run goes back to the queue"
    return Row(
        idx=idx,
        name=step.name,
        kind=step.kind,
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


def step_summary(step: StepRef, outcome: StepOutcome, stop: StopReason | None) -> dict[str, Any]:
    """One entry of the run's ``result.steps``."""
    status, _, error_class = step_status(outcome, stop)
    if error_class is not None:
        error_class = safe_text(error_class)  # a handler's own class name: the user's text
    return {
        "name": step.name,
        "kind": step.kind,
        "status": status,
        "exit_code": outcome.exit_code,
        "duration_seconds": round(outcome.duration_seconds, 3),
        "error_class": error_class,
    }


def step_outcome_label(outcome: StepOutcome, stop: StopReason | None) -> str:
    """succeeded | failed | cancelled | timeout: how a step ended, for observers."""
    status, _, error_class = step_status(outcome, stop)
    if status != "succeeded" and TIMEOUT_CODES & {error_class, outcome.error_class}:
        return "timeout"
    return status


# --- the decision -----------------------------------------------------------------------------


def decide(
    *,
    steps: Sequence[StepRef],
    outcomes: Sequence[StepOutcome],
    stop: StopReason | None,
    detail: str = "",
    worker_id: str,
    written: int = 0,
    cancel_reason: str | None = None,
    taken_over: bool = False,
    template: str = "",
    problem: TemplateProblem | None = None,
) -> Ending:
    """How the run ends.

    ``outcomes``: the steps that ran, in order (fewer than ``steps`` when the run stopped early);
    ``written``: how many of them already have their final row in the database (the worker
    writes a step's row before the next step starts); ``detail``: what was recorded with the
    stop reason; ``cancel_reason``: the operator's reason, when the run was cancelled.
    """
    if taken_over:
        return TakenOver()
    if stop == "lease_lost":
        return LetGo(detail or "heartbeat refused")
    if problem is not None:
        if problem.kind == "unavailable":
            return Release(f"worker could not load the template: {problem.message}")
        if problem.kind == "missing":
            return Complete(
                "failed",
                error=f"template {template!r} does not exist",
                error_class="template_not_found",
                retryable=False,
            )
        return Complete(
            "failed",
            error=f"template {template!r} has invalid steps: {problem.message}",
            error_class=problem.code or "invalid_template",
            retryable=False,
        )

    ran = list(zip(steps, outcomes, strict=False))
    pending = tuple(
        step_row(i, step, outcome, stop, detail, worker_id)
        for i, (step, outcome) in enumerate(ran)
        if i >= written
    )
    all_done = len(outcomes) == len(steps) and all(o.ok for o in outcomes)
    if stop == "shutdown" and not all_done:
        return Release(detail or "worker shutting down", pending)

    good = [o for o in outcomes if o.ok]
    result = {
        "steps": [step_summary(step, outcome, stop) for step, outcome in ran],
        "result": bounded(good[-1].result if good else None),
    }
    if all_done:
        return Complete("succeeded", result=result, steps=pending)

    skipped = tuple(
        Row(idx=i, name=steps[i].name, kind=steps[i].kind, status="skipped")
        for i in range(len(outcomes), len(steps))
    )
    rows = pending + skipped
    failure = next((o for o in outcomes if not o.ok), None)
    if stop == "timeout":
        return Complete(
            "failed", result=result, error=detail, error_class="timeout", steps=rows
        )
    if stop == "cancel" or (failure is not None and failure.status == "cancelled"):
        why = cancel_reason or detail
        return Complete(
            "cancelled",
            result=result,
            error=f"cancelled: {why}" if why else "cancelled",
            error_class="cancelled",
            steps=rows,
        )
    if failure is None:
        raise ValueError("steps stopped early without a failure or a stop reason")
    failed_step = ran[len(outcomes) - 1][0].name if ran else "?"
    error_class = "timeout" if failure.error_class in TIMEOUT_CODES else failure.error_class
    return Complete(
        "failed",
        result=result,
        error=f"step {failed_step!r} failed: {failure.error or 'no error message'}",
        error_class=error_class,
        retryable=failure.retryable,
        steps=rows,
    )


def unstorable(ending: Complete, problem: str) -> Complete:
    """What to record when the control plane refused ``ending`` itself (a result it will not
    store): the run failed, and says why, rather than waiting out its lease."""
    return Complete(
        "failed",
        error=f"could not store the run's outcome ({ending.status}): {problem}",
        error_class="invalid_result",
        retryable=False,
    )


def error_text(error: str | None) -> str | None:
    """A completion's error, storable and within the control plane's limit."""
    return safe_text(error[:MAX_ERROR_CHARS]) if error else None
