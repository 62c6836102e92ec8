"""How a run ends (``worker.ending.decide``): a table of cases, no database, no worker.

Each row is a situation the worker can be in when its steps stop (what the steps did, and why
the run was asked to stop) and the ending the worker must carry out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pulser_ops.steps import StepOutcome
from pulser_ops.worker.ending import (
    Complete,
    Ending,
    LetGo,
    Release,
    StepRef,
    TakenOver,
    TemplateProblem,
    decide,
    step_outcome_label,
    unstorable,
)
from pulser_ops.worker.held import StopReason

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TWO = [StepRef("build", "shell"), StepRef("ship", "python")]


def ok(result: Any = None) -> StepOutcome:
    return StepOutcome("succeeded", T0, T0 + timedelta(seconds=1), exit_code=0, result=result)


def bad(error_class: str = "step_failed", *, retryable: bool = True, error: str = "boom") -> StepOutcome:
    return StepOutcome(
        "failed", T0, T0 + timedelta(seconds=2), exit_code=3, error=error,
        error_class=error_class, retryable=retryable,
    )


def stopped(error: str = "step 'build' cancelled") -> StepOutcome:
    return StepOutcome(
        "cancelled", T0, T0 + timedelta(seconds=3), exit_code=-15, error=error,
        error_class="step_cancelled", retryable=False,
    )


@dataclass
class Case:
    name: str
    outcomes: list[StepOutcome]
    stop: StopReason | None
    want: type[Ending]
    status: str | None = None
    error: str | None = None
    error_class: str | None = None
    retryable: bool = True
    #: (status of each step row sent with the ending)
    rows: list[str] = field(default_factory=list)
    kw: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case("every step succeeded", [ok(1), ok({"n": 2})], None, Complete, "succeeded",
         rows=["succeeded", "succeeded"]),
    Case("a step failed: later steps skipped", [bad()], None, Complete, "failed",
         "step 'build' failed: boom", "step_failed", rows=["failed", "skipped"]),
    Case("a non-retryable failure says so", [ok(), bad("bad_input", retryable=False)], None,
         Complete, "failed", "step 'ship' failed: boom", "bad_input", False,
         rows=["succeeded", "failed"]),
    Case("a step's own timeout is a run timeout class", [bad("step_timeout")], None, Complete,
         "failed", "step 'build' failed: boom", "timeout", rows=["failed", "skipped"]),
    Case("a failure without a message", [bad(error="")], None, Complete, "failed",
         "step 'build' failed: no error message", "step_failed", rows=["failed", "skipped"]),
    Case("cancel while a step ran", [stopped()], "cancel", Complete, "cancelled",
         "cancelled: cancel requested", "cancelled", rows=["cancelled", "skipped"],
         kw={"detail": "cancel requested"}),
    Case("cancel with the operator's reason", [stopped()], "cancel", Complete, "cancelled",
         "cancelled: not needed", "cancelled", rows=["cancelled", "skipped"],
         kw={"detail": "cancel requested", "cancel_reason": "not needed"}),
    Case("cancel between steps", [ok()], "cancel", Complete, "cancelled", "cancelled",
         "cancelled", rows=["succeeded", "skipped"]),
    Case("a step that cancelled itself", [stopped()], None, Complete, "cancelled", "cancelled",
         "cancelled", rows=["cancelled", "skipped"]),
    Case("run timeout while a step ran", [stopped()], "timeout", Complete, "failed",
         "run timed out after 5s", "timeout", rows=["failed", "skipped"],
         kw={"detail": "run timed out after 5s"}),
    Case("run timeout after every step finished", [ok(), ok()], "timeout", Complete,
         "succeeded", rows=["succeeded", "succeeded"]),
    Case("shutdown while a step ran: released", [stopped()], "shutdown", Release,
         rows=["cancelled"], kw={"detail": "worker w1 stopping"}),
    Case("shutdown between steps: released", [ok()], "shutdown", Release, rows=["succeeded"]),
    Case("shutdown after every step finished: completed", [ok(), ok()], "shutdown", Complete,
         "succeeded", rows=["succeeded", "succeeded"]),
    Case("lease lost while a step ran", [stopped()], "lease_lost", LetGo),
    Case("lease lost after every step finished", [ok(), ok()], "lease_lost", LetGo),
    Case("released by the shutdown path", [ok(), ok()], "shutdown", TakenOver,
         kw={"taken_over": True}),
    Case("rows already written are not sent again", [ok(), bad()], None, Complete, "failed",
         "step 'ship' failed: boom", "step_failed", rows=["failed"], kw={"written": 1}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_how_a_run_ends(case: Case) -> None:
    ending = decide(steps=TWO, outcomes=case.outcomes, stop=case.stop, worker_id="w1", **case.kw)
    assert type(ending) is case.want
    if isinstance(ending, Complete):
        assert (ending.status, ending.error, ending.error_class, ending.retryable) == (
            case.status, case.error, case.error_class, case.retryable)
        assert [r.status for r in ending.steps] == case.rows
        assert [s["name"] for s in ending.result["steps"]] == ["build", "ship"][: len(case.outcomes)]
    if isinstance(ending, Release):
        assert [r.status for r in ending.steps] == case.rows


def test_the_result_summarises_the_steps_and_keeps_the_last_good_result() -> None:
    ending = decide(steps=TWO, outcomes=[ok({"a": 1}), bad()], stop=None, worker_id="w1")
    assert isinstance(ending, Complete)
    assert ending.result["result"] == {"a": 1}
    assert ending.result["steps"] == [
        {"name": "build", "kind": "shell", "status": "succeeded", "exit_code": 0,
         "duration_seconds": 1.0, "error_class": None},
        {"name": "ship", "kind": "python", "status": "failed", "exit_code": 3,
         "duration_seconds": 2.0, "error_class": "step_failed"},
    ]
    build, ship = ending.steps
    assert (build.idx, build.started_at, build.output["result"]) == (0, T0, {"a": 1})
    assert (ship.idx, ship.error, ship.exit_code) == (1, "boom", 3)


def test_a_step_stopped_by_the_run_timeout_failed_with_the_timeout() -> None:
    ending = decide(steps=TWO, outcomes=[stopped()], stop="timeout", worker_id="w1",
                    detail="run timed out after 5s")
    assert isinstance(ending, Complete)
    row = ending.steps[0]
    assert (row.status, row.error) == ("failed", "run timed out after 5s")
    assert ending.result["steps"][0]["error_class"] == "timeout"
    assert step_outcome_label(stopped(), "timeout") == "timeout"


def test_a_step_stopped_by_shutdown_says_the_run_goes_back() -> None:
    ending = decide(steps=TWO, outcomes=[stopped()], stop="shutdown", worker_id="w1")
    assert isinstance(ending, Release)
    assert ending.steps[0].error == "worker w1 shutting down; the run goes back to the queue"
    assert ending.reason == "worker shutting down"


@pytest.mark.parametrize(
    ("problem", "want", "error_class"),
    [
        (TemplateProblem("missing", "no such template"), Complete, "template_not_found"),
        (TemplateProblem("invalid", "steps[0].kind: bad", "invalid_steps"), Complete, "invalid_steps"),
        (TemplateProblem("unavailable", "database connection failed"), Release, None),
    ],
)
def test_a_template_that_cannot_be_used(
    problem: TemplateProblem, want: type[Ending], error_class: str | None
) -> None:
    ending = decide(steps=[], outcomes=[], stop=None, worker_id="w1", template="etl",
                    problem=problem)
    assert type(ending) is want
    if isinstance(ending, Complete):
        assert (ending.status, ending.error_class, ending.retryable) == ("failed", error_class, False)
        assert "'etl'" in (ending.error or "")
    else:
        assert isinstance(ending, Release) and "database connection failed" in ending.reason
    # A lost lease still wins: the run is someone else's.
    assert isinstance(
        decide(steps=[], outcomes=[], stop="lease_lost", worker_id="w1", problem=problem), LetGo
    )


def test_output_the_database_cannot_hold_is_made_storable_and_bounded() -> None:
    huge = {"text": "x" * 40_000}
    odd = {"nul": "a\x00b", "bytes": b"\xff"}
    ending = decide(steps=TWO[:1], outcomes=[ok(huge)], stop=None, worker_id="w1")
    assert isinstance(ending, Complete)
    assert ending.result["result"] == {"truncated": True, "json_bytes": 40_012}
    ending = decide(steps=TWO[:1], outcomes=[ok(odd)], stop=None, worker_id="w1")
    assert isinstance(ending, Complete)
    assert ending.result["result"] == {"nul": "a\u2400b", "bytes": "\ufffd"}


def test_an_outcome_the_database_refused_becomes_a_failure_that_says_why() -> None:
    refused = unstorable(Complete("succeeded", result={"x": 1}), "value too long")
    assert (refused.status, refused.error_class, refused.retryable) == (
        "failed", "invalid_result", False)
    assert refused.error == "could not store the run's outcome (succeeded): value too long"


def test_steps_that_stopped_early_for_no_reason_are_a_bug_not_a_success() -> None:
    with pytest.raises(ValueError):
        decide(steps=TWO, outcomes=[ok()], stop=None, worker_id="w1")
