"""``python`` steps: call a registered handler in its own thread.

The handler runs in a separate thread so the calling thread keeps watching the
run's cancel token and the step timeout; on either it sets the handler's token and
waits ``kill_grace_seconds`` for a cooperative exit before abandoning the thread
(Python threads cannot be killed, so a handler that never checks is leaked — it is
a daemon thread and dies with the worker).
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from datetime import datetime
from typing import Any

from pulser_ops.daemon_threads import DaemonThreads
from pulser_ops.errors import (
    NonRetryable,
    StepCancelled,
    StepError,
    StepFailed,
    StepTimeout,
    UnknownHandler,
)
from pulser_ops.steps.context import StepContext
from pulser_ops.steps.outcome import StepOutcome, failed, utcnow
from pulser_ops.steps.registry import HandlerContext, HandlerRegistry, StepLogger
from pulser_ops.steps.specs import PythonStep
from pulser_ops.steps.template import render_json

_POLL = 0.05
#: Handlers run on reused daemon threads (one that ignores cancellation keeps its thread).
_HANDLER_THREADS = DaemonThreads("pulser-step-handler")
_TRACEBACK_MAX = 8 * 1024


class _Call:
    """Result slot filled by the handler thread."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


def _start(fn: Any, hctx: HandlerContext, name: str) -> _Call:
    call = _Call()

    def target() -> None:
        threading.current_thread().name = f"step-{name}-handler"  # for tracebacks and py-spy
        try:
            call.result = fn(hctx)
        except BaseException as exc:
            call.error = exc
        finally:
            call.done.set()

    _HANDLER_THREADS.submit(target)
    return call


def _supervise(
    call: _Call, spec: PythonStep, ctx: StepContext, hctx: HandlerContext
) -> StepError | None:
    """Wait for the handler; return the stop reason if cancel/timeout interrupted it."""
    deadline = None if spec.timeout_seconds is None else time.monotonic() + spec.timeout_seconds
    stop: StepError | None = None
    stop_at = 0.0
    token = hctx.cancel_token
    while not call.done.wait(_POLL):
        now = time.monotonic()
        if stop is None:
            stop = stop_reason(spec, ctx, deadline, now)
            if stop is not None:
                token.set()
                stop_at = now
        elif now - stop_at >= spec.kill_grace_seconds:
            note_abandoned(spec, ctx)
            break
    return stop


def stop_reason(
    spec: PythonStep, ctx: StepContext, deadline: float | None, now: float
) -> StepError | None:
    """Why a running handler must stop now (the run's cancel, the step's timeout), if it must."""
    if ctx.cancel_token.is_set():
        return StepCancelled(f"step {spec.name!r} cancelled")
    if deadline is not None and now >= deadline:
        return StepTimeout(f"step {spec.name!r} timed out after {spec.timeout_seconds:g}s")
    return None


def note_abandoned(spec: PythonStep, ctx: StepContext, what: str = "thread") -> None:
    ctx.emit(
        "step",
        "warn",
        f"handler {spec.handler!r} ignored cancellation for "
        f"{spec.kill_grace_seconds:g}s; its {what} was abandoned",
        {"step": spec.name},
    )


def _error_outcome(
    exc: BaseException,
    started_at: datetime,
    ctx: StepContext,
    spec: PythonStep,
    artifacts: tuple[str, ...],
) -> StepOutcome:
    if isinstance(exc, NonRetryable):
        return failed(started_at, exc, error_class=exc.error_class, artifacts=artifacts)
    if isinstance(exc, StepError):
        return failed(started_at, exc, artifacts=artifacts)
    tb = "".join(traceback.format_exception(exc))[-_TRACEBACK_MAX:]
    ctx.emit(
        "log",
        "error",
        f"handler {spec.handler!r} raised {type(exc).__name__}: {exc}",
        {"step": spec.name, "stream": "handler", "traceback": tb},
    )
    return failed(
        started_at,
        StepFailed(f"{type(exc).__name__}: {exc}"),
        error_class=type(exc).__name__,
        artifacts=artifacts,
    )


def prepare(
    spec: PythonStep, ctx: StepContext, registry: HandlerRegistry
) -> tuple[Any, HandlerContext] | StepOutcome:
    """The handler and the context it is called with, or the failed outcome of a step that
    cannot start (no such handler). Raises ``TemplateError`` for args that do not render."""
    try:
        fn = registry.get(spec.handler)
    except UnknownHandler as exc:
        return failed(utcnow(), exc)
    args = render_json(dict(spec.args), ctx.params, where=f"step {spec.name!r} args")
    hctx = HandlerContext(
        step_ctx=ctx,
        step_name=spec.name,
        args=args,
        cancel_token=threading.Event(),
        log=StepLogger(ctx, spec.name),
    )
    return fn, hctx


def finish(
    spec: PythonStep,
    ctx: StepContext,
    hctx: HandlerContext,
    started_at: datetime,
    stop: StepError | None,
    error: BaseException | None,
    result: Any,
) -> StepOutcome:
    """The outcome of a handler call: stopped, raised, or returned (a JSON value)."""
    artifacts = tuple(hctx.saved_artifacts)
    if stop is not None:
        return failed(started_at, stop, artifacts=artifacts)
    if error is not None:
        return _error_outcome(error, started_at, ctx, spec, artifacts)
    try:
        json.dumps(result)
    except (TypeError, ValueError) as exc:
        return failed(
            started_at,
            NonRetryable(
                f"handler {spec.handler!r} returned a non-JSON value: {exc}",
                error_class="invalid_result",
            ),
            error_class="invalid_result",
            artifacts=artifacts,
        )
    return StepOutcome(
        status="succeeded",
        started_at=started_at,
        finished_at=utcnow(),
        result=result,
        artifacts=artifacts,
    )


def run_python(spec: PythonStep, ctx: StepContext, registry: HandlerRegistry) -> StepOutcome:
    """Run the handler; its return value (JSON-able) becomes the outcome's result."""
    started_at = utcnow()
    ready = prepare(spec, ctx, registry)
    if isinstance(ready, StepOutcome):
        return ready
    fn, hctx = ready
    call = _start(fn, hctx, spec.name)
    stop = _supervise(call, spec, ctx, hctx)
    return finish(spec, ctx, hctx, started_at, stop, call.error, call.result)
