"""``run_step``: the single entry point the worker loop calls for each step."""

from __future__ import annotations

from datetime import datetime

from pulser_ops import tracing
from pulser_ops.errors import StepCancelled, StepError
from pulser_ops.models import EventLevel
from pulser_ops.steps.context import StepContext
from pulser_ops.steps.docker_step import run_docker
from pulser_ops.steps.http_step import run_http
from pulser_ops.steps.outcome import StepOptions, StepOutcome, failed, utcnow
from pulser_ops.steps.python_step import run_python
from pulser_ops.steps.registry import HandlerRegistry
from pulser_ops.steps.shell_step import run_shell
from pulser_ops.steps.specs import DockerStep, HttpStep, McpStep, PythonStep, ShellStep, StepSpec


def _dispatch(
    spec: StepSpec, ctx: StepContext, registry: HandlerRegistry, options: StepOptions
) -> StepOutcome:
    if isinstance(spec, ShellStep):
        return run_shell(spec, ctx, options)
    if isinstance(spec, HttpStep):
        return run_http(spec, ctx)
    if isinstance(spec, PythonStep):
        return run_python(spec, ctx, registry)
    if isinstance(spec, McpStep):
        # Imported on first use: the MCP SDK takes ~1 s to import, which every worker
        # process (and every CLI call) would otherwise pay even if no template uses mcp.
        from pulser_ops.steps.mcp_step import run_mcp

        return run_mcp(spec, ctx)
    if isinstance(spec, DockerStep):
        return run_docker(spec, ctx, options)
    raise TypeError(f"not a step spec: {spec!r}")


def run_step(
    spec: StepSpec,
    ctx: StepContext,
    registry: HandlerRegistry | None = None,
    options: StepOptions | None = None,
) -> StepOutcome:
    """Run one step to completion and describe what happened.

    Never raises because the *step* failed, timed out or was cancelled (that is the
    returned outcome); it raises only for programming errors such as passing
    something that is not a parsed spec. Emits ``step`` events when the step starts
    and ends so the board can show progress without reading ``run_steps``.
    """
    registry = registry or HandlerRegistry()
    options = options or StepOptions()
    started_at = emit_started(spec, ctx)
    with tracing.step(ctx.run_id, ctx.attempt, spec.name, spec.kind) as span:
        try:
            refuse_if_cancelled(spec, ctx)
            outcome = _dispatch(spec, ctx, registry, options)
        except StepError as exc:  # template rendering, cwd problems... raised before running
            outcome = failed(started_at, exc)
        tracing.step_outcome(span, outcome.status, outcome.error)
    emit_finished(spec, ctx, outcome)
    return outcome


def emit_started(spec: StepSpec, ctx: StepContext) -> datetime:
    """The ``step`` event of a step that starts; returns its start time."""
    ctx.emit(
        "step",
        "info",
        f"step {spec.name!r} ({spec.kind}) started",
        {"step": spec.name, "kind": spec.kind, "status": "running"},
    )
    return utcnow()


def refuse_if_cancelled(spec: StepSpec, ctx: StepContext) -> None:
    if ctx.cancel_token.is_set():  # cancelled between steps: do not start anything
        raise StepCancelled(f"step {spec.name!r} not started: run cancelled")


def emit_finished(spec: StepSpec, ctx: StepContext, outcome: StepOutcome) -> None:
    """The ``step`` event of a step that ended, however it ended."""
    level: EventLevel = (
        "info" if outcome.ok else ("warn" if outcome.status == "cancelled" else "error")
    )
    ctx.emit(
        "step",
        level,
        f"step {spec.name!r} {outcome.status}" + (f": {outcome.error}" if outcome.error else ""),
        {
            "step": spec.name,
            "kind": spec.kind,
            "status": outcome.status,
            "exit_code": outcome.exit_code,
            "error_class": outcome.error_class,
            "duration_seconds": round(outcome.duration_seconds, 3),
            "artifacts": list(outcome.artifacts),
        },
    )
