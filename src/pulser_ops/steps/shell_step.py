"""``shell`` steps: an argv list exec'd directly, or a string run by ``/bin/sh -c``."""

from __future__ import annotations

from datetime import datetime

from pulser_ops.errors import (
    MissingDependency,
    StepCancelled,
    StepError,
    StepFailed,
    StepTimeout,
)
from pulser_ops.steps.context import StepContext
from pulser_ops.steps.environment import resolve_cwd, step_env
from pulser_ops.steps.logstream import log_content_type
from pulser_ops.steps.outcome import StepOptions, StepOutcome, failed, utcnow
from pulser_ops.steps.process import ProcessResult, run_process
from pulser_ops.steps.specs import ShellStep
from pulser_ops.steps.template import render_argv


def shell_argv(command: str | list[str], ctx: StepContext, step_name: str) -> list[str]:
    """The argv to exec: placeholders become whole elements; strings go to ``sh -c``
    untouched (the string itself is template-free, enforced by the spec)."""
    if isinstance(command, str):
        return ["/bin/sh", "-c", command]
    return render_argv(command, ctx.params, where=f"step {step_name!r} command")


def process_outcome(
    res: ProcessResult,
    *,
    started_at: datetime,
    ok_exit_codes: list[int],
    timeout_seconds: float | None,
    artifacts: tuple[str, ...],
) -> StepOutcome:
    """Map a finished process to an outcome (shared with docker steps)."""
    result = {"exit_code": res.exit_code, "lines": res.lines, "sigkilled": res.sigkilled}
    error: StepError | None = None
    if res.reason == "cancelled":
        error = StepCancelled("step cancelled; process group stopped")
    elif res.reason == "timeout":
        error = StepTimeout(f"step timed out after {timeout_seconds:g}s; process group stopped")
    elif res.exit_code not in ok_exit_codes:
        error = StepFailed(f"exit code {res.exit_code} not in ok_exit_codes {ok_exit_codes}")
    if error is not None:
        return failed(
            started_at, error, exit_code=res.exit_code, result=result, artifacts=artifacts
        )
    return StepOutcome(
        status="succeeded",
        started_at=started_at,
        finished_at=utcnow(),
        exit_code=res.exit_code,
        result=result,
        artifacts=artifacts,
    )


def run_shell(spec: ShellStep, ctx: StepContext, options: StepOptions) -> StepOutcome:
    """Run the command; the log artifact is saved whatever happens, even on cancel."""
    started_at = utcnow()
    argv = shell_argv(spec.command, ctx, spec.name)
    env = step_env(ctx, spec.name, spec.env, base=options.base_env)
    cwd = resolve_cwd(ctx, spec.cwd)
    try:
        res = run_process(
            argv,
            ctx=ctx,
            step_name=spec.name,
            env=env,
            cwd=cwd,
            timeout_seconds=spec.timeout_seconds,
            kill_grace_seconds=spec.kill_grace_seconds,
            options=options,
        )
    except FileNotFoundError:
        return failed(started_at, MissingDependency(f"executable not found: {argv[0]!r}"))
    except OSError as exc:  # permission denied, exec format error, argv too long...
        return failed(started_at, StepFailed(f"cannot execute {argv[0]!r}: {exc}"))
    log_name = f"{spec.name}.log"
    ctx.save_artifact(log_name, res.log, "log", log_content_type(res.log))
    return process_outcome(
        res,
        started_at=started_at,
        ok_exit_codes=spec.ok_exit_codes,
        timeout_seconds=spec.timeout_seconds,
        artifacts=(log_name,),
    )
