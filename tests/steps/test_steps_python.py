"""Python handler steps: results, logs, artifacts, errors and cooperative cancellation."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from pulser_ops.steps import (
    HandlerContext,
    HandlerRegistry,
    NonRetryable,
    RecordingContext,
    parse_step,
    run_step,
)

registry = HandlerRegistry()
started = threading.Event()
blocker = threading.Event()


@registry.register("greet")
def greet(ctx: HandlerContext) -> dict[str, Any]:
    ctx.log.info("greeting", who=ctx.params["who"])
    ctx.save_artifact("greeting.md", f"# hello {ctx.params['who']}", "markdown", "text/markdown")
    return {"greeting": f"hello {ctx.params['who']}", "times": ctx.args["times"], "run": ctx.run_id}


@registry.register("boom")
def boom(ctx: HandlerContext) -> None:
    raise ValueError("bad value 42")


@registry.register("refuse")
def refuse(ctx: HandlerContext) -> None:
    raise NonRetryable("input can never work", error_class="bad_input")


@registry.register("wait_for_cancel")
def wait_for_cancel(ctx: HandlerContext) -> str:
    started.set()
    for _ in range(600):
        ctx.sleep(0.5)  # raises StepCancelled as soon as the token is set
    return "never cancelled"


@registry.register("ignore_cancel")
def ignore_cancel(ctx: HandlerContext) -> str:
    started.set()
    blocker.wait(60)
    return "finally done"


@registry.register("not_json")
def not_json(ctx: HandlerContext) -> object:
    return {"x": object()}


@pytest.fixture(autouse=True)
def _reset_events() -> Any:
    started.clear()
    blocker.clear()
    yield
    blocker.set()  # release any abandoned handler thread


def py(**fields: Any) -> Any:
    return parse_step({"kind": "python", "name": "py", **fields})


def cancel_after_start(ctx: RecordingContext) -> None:
    def go() -> None:
        started.wait(30)
        ctx.cancel_token.set()

    threading.Thread(target=go, daemon=True).start()


def test_success_with_log_artifact_and_templated_args(ctx: RecordingContext) -> None:
    ctx.params = {"who": "ops", "n": 3}
    outcome = run_step(py(handler="greet", args={"times": "{{ params.n }}"}), ctx, registry)
    assert outcome.status == "succeeded", outcome.error
    assert outcome.result == {"greeting": "hello ops", "times": 3, "run": ctx.run_id}
    assert outcome.artifacts == ("greeting.md",)
    assert ctx.artifacts["greeting.md"].kind == "markdown"
    logs = ctx.log_events("handler")
    assert [(e.level, e.message, e.data["who"]) for e in logs] == [("info", "greeting", "ops")]


def test_exception_becomes_a_failure_with_its_class(ctx: RecordingContext) -> None:
    outcome = run_step(py(handler="boom"), ctx, registry)
    assert outcome.status == "failed"
    assert outcome.error == "ValueError: bad value 42"
    assert outcome.error_class == "ValueError" and outcome.retryable is True
    [event] = [e for e in ctx.log_events("handler") if e.level == "error"]
    assert "bad value 42" in event.data["traceback"]


def test_non_retryable(ctx: RecordingContext) -> None:
    outcome = run_step(py(handler="refuse"), ctx, registry)
    assert outcome.status == "failed"
    assert (outcome.error_class, outcome.retryable) == ("bad_input", False)
    assert outcome.error == "input can never work"


def test_cooperative_cancel(ctx: RecordingContext) -> None:
    cancel_after_start(ctx)
    outcome = run_step(py(handler="wait_for_cancel"), ctx, registry)
    assert outcome.status == "cancelled"
    assert outcome.error_class == "step_cancelled"
    assert outcome.duration_seconds < 30
    assert not any("abandoned" in e.message for e in ctx.events)


def test_handler_ignoring_cancel_is_abandoned_after_grace(ctx: RecordingContext) -> None:
    cancel_after_start(ctx)
    outcome = run_step(py(handler="ignore_cancel", kill_grace_seconds=0.2), ctx, registry)
    assert outcome.status == "cancelled"
    assert any(e.level == "warn" and "abandoned" in e.message for e in ctx.events)


def test_timeout_sets_the_handler_token(ctx: RecordingContext) -> None:
    outcome = run_step(py(handler="wait_for_cancel", timeout_seconds=0.3), ctx, registry)
    assert outcome.status == "failed"
    assert outcome.error_class == "step_timeout"
    assert not ctx.cancel_token.is_set()  # the run itself was not cancelled


def test_unknown_handler(ctx: RecordingContext) -> None:
    outcome = run_step(py(handler="nope"), ctx, registry)
    assert outcome.status == "failed"
    assert outcome.error_class == "unknown_handler"
    assert "registered: boom, greet" in (outcome.error or "")


def test_non_json_result_is_refused(ctx: RecordingContext) -> None:
    outcome = run_step(py(handler="not_json"), ctx, registry)
    assert outcome.status == "failed"
    assert outcome.error_class == "invalid_result" and outcome.retryable is False


def test_registry_rejects_duplicates() -> None:
    with pytest.raises(ValueError, match="already registered"):
        registry.add("greet", greet)
    assert "greet" in registry and "nope" not in registry
