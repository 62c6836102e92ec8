"""``run_step_async``: one step, run from an event loop (the reference worker's).

The step is the same as with :func:`run_step` (same events, same outcomes, same errors); what
differs is where its work happens, so that a short step costs the loop as little as possible:

- a ``python`` step whose handler is ``async def`` runs on the loop itself, as a task;
- a ``python`` step with a plain handler runs on a thread and is supervised from the loop
  (no thread of its own just to wait for it);
- an ``http`` step runs on the loop, on the worker's shared httpx client, so connections are
  reused across runs instead of one client (and one TLS context) per request;
- ``shell``, ``docker`` and ``mcp`` steps are blocking executors: they run on a thread, exactly
  as :func:`run_step` runs them, and watch the run's cancel token themselves.

``stopped`` is a future the caller resolves when the run must stop (cancel, timeout, shutdown,
lease lost; the cancel token is set too). A handler then gets ``ctx.cancelled()`` (and, if it is
``async def``, a ``CancelledError`` at its next ``await``); one that ignores it for its
``kill_grace_seconds`` is abandoned, like a thread that ignores its token.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar, runtime_checkable

import httpx

from pulser_ops import tracing
from pulser_ops.daemon_threads import DaemonThreads
from pulser_ops.errors import StepCancelled, StepError, StepTimeout
from pulser_ops.steps import http_step, python_step
from pulser_ops.steps.context import ArtifactKind, StepContext
from pulser_ops.steps.outcome import StepOptions, StepOutcome, failed, utcnow
from pulser_ops.steps.registry import HandlerRegistry
from pulser_ops.steps.runner import _dispatch, emit_finished, emit_started, refuse_if_cancelled
from pulser_ops.steps.specs import HttpStep, PythonStep, StepSpec

T = TypeVar("T")

#: Blocking executors (shell, docker, mcp) and plain python handlers run on these.
_THREADS = DaemonThreads("pulser-step")


@runtime_checkable
class AsyncArtifactSaver(Protocol):
    """A step context that can save an artifact without blocking the loop."""

    async def save_artifact_async(
        self,
        name: str,
        data: str | bytes,
        kind: ArtifactKind = "text",
        content_type: str | None = None,
    ) -> None: ...


def on_thread(fn: Callable[[], T]) -> asyncio.Future[T]:
    """``fn()`` on one of the step threads, awaitable from the loop."""
    return _THREADS.future(fn)


async def run_step_async(
    spec: StepSpec,
    ctx: StepContext,
    registry: HandlerRegistry,
    options: StepOptions,
    *,
    stopped: asyncio.Future[None],
    http: httpx.AsyncClient | None = None,
) -> StepOutcome:
    """Run one step from the event loop; never raises for the step's own failure."""
    started_at = emit_started(spec, ctx)
    with tracing.step(ctx.run_id, ctx.attempt, spec.name, spec.kind) as span:
        try:
            refuse_if_cancelled(spec, ctx)
            if isinstance(spec, PythonStep):
                outcome = await _python(spec, ctx, registry, stopped)
            elif isinstance(spec, HttpStep):
                outcome = await _http(spec, ctx, stopped, http)
            else:
                outcome = await on_thread(lambda: _dispatch(spec, ctx, registry, options))
        except StepError as exc:  # template rendering, cwd problems... raised before running
            outcome = failed(started_at, exc)
        tracing.step_outcome(span, outcome.status, outcome.error)
    emit_finished(spec, ctx, outcome)
    return outcome


async def _until(
    work: asyncio.Future[Any], stopped: asyncio.Future[None], deadline: float | None
) -> None:
    """Wait until ``work`` is done, the run must stop, or the deadline passes (what
    ``asyncio.wait(FIRST_COMPLETED)`` does, for the two futures of every step, cheaper)."""
    if work.done() or stopped.done():
        return
    loop = asyncio.get_running_loop()
    woken: asyncio.Future[None] = loop.create_future()

    def wake(_: object = None) -> None:
        if not woken.done():
            woken.set_result(None)

    work.add_done_callback(wake)
    stopped.add_done_callback(wake)
    timer = None
    if deadline is not None:
        timer = loop.call_later(max(0.0, deadline - time.monotonic()), wake)
    try:
        await woken
    finally:
        work.remove_done_callback(wake)
        stopped.remove_done_callback(wake)
        if timer is not None:
            timer.cancel()


def _stop_reason(
    stopped: asyncio.Future[None], deadline: float | None, cancelled: str, timed_out: str
) -> StepError | None:
    if stopped.done():
        return StepCancelled(cancelled)
    if deadline is not None and time.monotonic() >= deadline:
        return StepTimeout(timed_out)
    return None


async def _python(
    spec: PythonStep, ctx: StepContext, registry: HandlerRegistry, stopped: asyncio.Future[None]
) -> StepOutcome:
    started_at = utcnow()
    ready = python_step.prepare(spec, ctx, registry)
    if isinstance(ready, StepOutcome):
        return ready
    fn, hctx = ready
    is_async = inspect.iscoroutinefunction(fn)
    work: asyncio.Future[Any]
    if is_async:
        coro: Coroutine[Any, Any, Any] = fn(hctx)
        work = asyncio.ensure_future(coro)
    else:
        work = on_thread(lambda: fn(hctx))
    deadline = None if spec.timeout_seconds is None else time.monotonic() + spec.timeout_seconds
    await _until(work, stopped, deadline)
    stop: StepError | None = None
    if not work.done():
        stop = _stop_reason(
            stopped,
            deadline,
            f"step {spec.name!r} cancelled",
            f"step {spec.name!r} timed out after {spec.timeout_seconds or 0:g}s",
        )
        hctx.cancel_token.set()
        if is_async:
            work.cancel()
        await asyncio.wait((work,), timeout=spec.kill_grace_seconds)
        if not work.done():
            python_step.note_abandoned(spec, ctx, "task" if is_async else "thread")
            work.add_done_callback(_forget)
            return python_step.finish(spec, ctx, hctx, started_at, stop, None, None)
    error: BaseException | None = None
    result: Any = None
    if work.cancelled():
        error = None if stop is not None else asyncio.CancelledError()
    elif (e := work.exception()) is not None:
        error = e
    else:
        result = work.result()
    if stop is not None and isinstance(error, asyncio.CancelledError | StepCancelled):
        error = None  # the handler stopped because it was told to: the stop is the outcome
    return python_step.finish(spec, ctx, hctx, started_at, stop, error, result)


async def _http(
    spec: HttpStep,
    ctx: StepContext,
    stopped: asyncio.Future[None],
    client: httpx.AsyncClient | None,
) -> StepOutcome:
    started_at = utcnow()
    req = http_step.build_request(spec, ctx)
    work = asyncio.ensure_future(http_step.send(req, spec, client))
    deadline = None if spec.timeout_seconds is None else time.monotonic() + spec.timeout_seconds
    await _until(work, stopped, deadline)
    if not work.done():
        stop = _stop_reason(
            stopped,
            deadline,
            f"{req.method} request cancelled",
            f"{req.method} request timed out after {spec.timeout_seconds or 0:g}s",
        )
        work.cancel()
        await asyncio.wait((work,))
        return failed(started_at, stop or StepCancelled(f"{req.method} request cancelled"))
    try:
        resp = work.result()
    except httpx.HTTPError as exc:
        return http_step.transport_failure(req, exc, started_at)
    saved, outcome = http_step.outcome(spec, req, resp, started_at)
    await save_artifact(ctx, *saved)
    return outcome


async def save_artifact(
    ctx: StepContext,
    name: str,
    data: str | bytes,
    kind: ArtifactKind = "text",
    content_type: str | None = None,
) -> None:
    """Save without blocking the loop: the context's own async save, else on a thread."""
    if isinstance(ctx, AsyncArtifactSaver):
        await ctx.save_artifact_async(name, data, kind, content_type)
    else:
        await on_thread(lambda: ctx.save_artifact(name, data, kind, content_type))


def _forget(work: asyncio.Future[Any]) -> None:
    """An abandoned handler that ends after all: read its outcome so nothing is logged."""
    if not work.cancelled():
        work.exception()

