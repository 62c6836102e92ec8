"""Execute one claimed run on the worker's event loop: its template's steps in order, then
complete, release or let go.

*How* the run ends is decided by one pure function, :func:`.ending.decide`, from the step
outcomes and the reason the run was asked to stop (recorded on the :class:`HeldRun` by the
heartbeat, the run timeout or the shutdown logic). This module carries the decision out:

- ``Complete``: the completion goes to the group committer, with the run's unsent events and
  its last step rows; a refused completion is retried without the events (after they were
  appended on their own), then recorded as a failure that says why;
- ``Release``: step rows written, events flushed, the run given back to the queue;
- ``LetGo``: the lease moved on: a ``lease_lost`` event says so, nothing else is written;
- ``TakenOver``: the shutdown path released the run itself.

Where things run: the run itself is a task on the loop; steps run as
:func:`pulser_ops.steps.async_runner.run_step_async` places them (async handlers and http on
the loop, blocking executors and plain handlers on threads). Step rows (``record_run_step``),
event flushes and everything else that blocks go through the caller's sync client on the
worker's bookkeeping threads: they are rare per run (a short last step's row goes with the
completion) and never hold up the loop.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Literal

import httpx

from .. import calls
from ..client import AsyncClient, Client
from ..daemon_threads import DaemonThreads
from ..errors import LeaseLost, NotFound, PulserOpsError, StepFailed, TransportError
from ..steps import HandlerRegistry, StepOptions, StepOutcome, StepSpec, StepSpecError
from ..steps.async_runner import run_step_async
from ..steps.outcome import failed, utcnow
from .completer import AsyncCompleter
from .context import RunContext
from .ending import (
    Complete,
    Ending,
    LetGo,
    Release,
    Row,
    StepRef,
    TakenOver,
    TemplateProblem,
    decide,
    error_text,
    step_outcome_label,
    step_row,
    unstorable,
)
from .events import EventSink
from .held import HeldRun
from .observing import GuardedObserver
from .templates import TemplateCache

log = logging.getLogger("pulser_ops.worker")

#: What became of a run, as the worker counts it (``Worker.endings``).
Settled = Literal["succeeded", "failed", "cancelled", "released", "lease_lost", "abandoned"]

#: How long the last step's "running" row waits. A step that ends first needs none: its final
#: row (with the step's start time) goes out with the completion, one round trip less per
#: run. A longer step shows as running this much later, which nobody watching can tell.
RUNNING_ROW_DELAY_SECONDS = 0.05


class RunExecutor:
    def __init__(
        self,
        link: AsyncClient,
        client: Client,
        sink: EventSink,
        completer: AsyncCompleter,
        templates: TemplateCache,
        registry: HandlerRegistry,
        options: StepOptions,
        worker_id: str,
        workroot: Path | None = None,
        *,
        observer: GuardedObserver,
        on_cancel: Callable[[HeldRun], None],
    ) -> None:
        self._link = link
        self._client = client
        self._sink = sink
        self._completer = completer
        self._templates = templates
        self._registry = registry
        self._options = options
        self._worker_id = worker_id
        self._workroot = workroot
        self._observer = observer
        self._on_cancel = on_cancel
        self._bookkeeping = DaemonThreads("pulser-bookkeeping")
        self._http: httpx.AsyncClient | None = None
        self._later = Later()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        self._bookkeeping.close()

    def _blocking(self, fn: Callable[[], object]) -> Awaitable[object]:
        return self._bookkeeping.future(fn)

    @property
    def http(self) -> httpx.AsyncClient:
        """One HTTP client for every http step (made on first use: it loads TLS settings)."""
        if self._http is None:
            self._http = httpx.AsyncClient()
        return self._http

    # --- entry point ------------------------------------------------------------------------

    async def execute(self, held: HeldRun) -> tuple[Settled, str]:
        """Run every step of ``held`` and settle the run; never raises for a run's failure.
        Returns what became of it, and the observers' word for that."""
        loop = asyncio.get_running_loop()
        stopped: asyncio.Future[None] = loop.create_future()

        def heard_stop() -> None:
            loop.call_soon_threadsafe(_resolve, stopped)

        held.on_stop = heard_stop
        if held.reason is not None:
            _resolve(stopped)
        run = held.run
        try:
            loaded = await self._templates.get(run.template, run.template_version)
        except NotFound:
            return await self._carry_out(held, self._decide(held, problem=_missing()))
        except StepSpecError as e:
            problem = TemplateProblem("invalid", e.message, e.code)
            return await self._carry_out(held, self._decide(held, problem=problem))
        except PulserOpsError as e:
            log.warning("run %s: cannot load template %s: %s", held.run_id, run.template, e)
            problem = TemplateProblem("unavailable", str(e))
            return await self._carry_out(held, self._decide(held, problem=problem))

        timeout = loaded.template.timeout_seconds
        timer = None
        if timeout:
            left = max(0.0, timeout - (time.monotonic() - held.claimed_monotonic))
            timer = loop.call_later(
                left, held.stop, "timeout", f"run timed out after {timeout}s (template timeout)"
            )
        ctx = RunContext(
            held, self._client, self._sink, self._worker_id, self._workdir_for, self._link
        )
        try:
            outcomes, written = await self._run_steps(held, loaded.steps, ctx, stopped)
        finally:
            if timer is not None:
                timer.cancel()
            if ctx.workdir_made:
                workdir = ctx.workdir
                await self._blocking(lambda: shutil.rmtree(workdir, ignore_errors=True))
        refs = [StepRef(s.name, s.kind) for s in loaded.steps]
        ending = self._decide(held, steps=refs, outcomes=outcomes, written=written)
        if isinstance(ending, Complete) and ending.status == "cancelled":
            reason = await self._cancel_reason(held)
            ending = self._decide(
                held, steps=refs, outcomes=outcomes, written=written, cancel_reason=reason
            )
        return await self._carry_out(held, ending)

    def _workdir_for(self, held: HeldRun) -> Path:
        """A fresh name under the temp root (RunContext creates it when a step first asks)."""
        root = Path(self._workroot or tempfile.gettempdir())
        return root / f"pulser-{held.run_id[:8]}-a{held.attempt}-{secrets.token_hex(8)}"

    def _decide(
        self,
        held: HeldRun,
        *,
        steps: list[StepRef] | None = None,
        outcomes: list[StepOutcome] | None = None,
        written: int = 0,
        cancel_reason: str | None = None,
        problem: TemplateProblem | None = None,
    ) -> Ending:
        return decide(
            steps=steps or [],
            outcomes=outcomes or [],
            stop=held.reason,
            detail=held.detail,
            worker_id=self._worker_id,
            written=written,
            cancel_reason=cancel_reason,
            taken_over=held.taken_over,
            template=held.run.template,
            problem=problem,
        )

    async def _cancel_reason(self, held: HeldRun) -> str | None:
        try:
            return (await self._link.runs.get(held.run_id)).cancel_reason
        except PulserOpsError:
            return None

    # --- steps ------------------------------------------------------------------------------

    async def _run_steps(
        self,
        held: HeldRun,
        steps: list[StepSpec],
        ctx: RunContext,
        stopped: asyncio.Future[None],
    ) -> tuple[list[StepOutcome], int]:
        """The outcomes of the steps that ran, and how many of them have their final row
        written already (each is written before the next step starts; the last one goes with
        the run's ending)."""
        outcomes: list[StepOutcome] = []
        written = 0
        for idx, spec in enumerate(steps):
            if idx > 0:
                await self._between_steps(held)
            if held.reason is not None:
                break
            await self._write_rows(held, self._rows(held, steps, outcomes, written))
            written = len(outcomes)
            outcome = await self._run_one(held, idx, spec, ctx, stopped, idx == len(steps) - 1)
            self._observer.step_finished(
                spec.kind, step_outcome_label(outcome, held.reason), outcome.duration_seconds
            )
            outcomes.append(outcome)
            if not outcome.ok:
                break
        return outcomes, written

    def _rows(
        self, held: HeldRun, steps: list[StepSpec], outcomes: list[StepOutcome], written: int
    ) -> list[Row]:
        return [
            step_row(
                i,
                StepRef(steps[i].name, steps[i].kind),
                outcomes[i],
                held.reason,
                held.detail,
                self._worker_id,
            )
            for i in range(written, len(outcomes))
        ]

    async def _run_one(
        self,
        held: HeldRun,
        idx: int,
        spec: StepSpec,
        ctx: RunContext,
        stopped: asyncio.Future[None],
        last: bool,
    ) -> StepOutcome:
        """One step. Its "running" row goes out in the background, so the step starts without
        waiting for a round trip; for the last step only if it is still running after
        RUNNING_ROW_DELAY_SECONDS. The step's final row is written after it, in order."""
        recording: list[Awaitable[object]] = []
        running = Row(idx=idx, name=spec.name, kind=spec.kind, status="running")

        def record_running() -> None:
            recording.append(self._blocking(lambda: self._record_row(held, running)))

        watch = None
        if last:
            watch = self._later.call(RUNNING_ROW_DELAY_SECONDS, record_running)
        else:
            record_running()
        started = utcnow()
        try:
            outcome = await run_step_async(
                spec,
                ctx,
                self._registry,
                self._options,
                stopped=stopped,
                http=self.http if spec.kind == "http" else None,
            )
        except Exception as e:  # a bug in an executor: a failed step, not a run left waiting
            log.exception("run %s: step %s crashed the executor", held.run_id, spec.name)
            outcome = failed(
                started, StepFailed(f"worker error: {e!r}"), error_class="worker_error"
            )
        finally:
            if watch is not None:
                self._later.cancel(watch)
        for pending in recording:
            await pending
        return outcome

    def _record_row(self, held: HeldRun, row: Row) -> None:
        """``record_run_step`` (on a bookkeeping thread); a refused fence means the lease is
        gone."""
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

    async def _write_rows(self, held: HeldRun, rows: Sequence[Row]) -> None:
        """Step rows written on their own (a step's row before the next step starts, or rows
        that will not go with a completion)."""

        def write() -> None:
            for row in rows:
                self._record_row(held, row)

        if rows:
            await self._blocking(write)

    async def _between_steps(self, held: HeldRun) -> None:
        """Check for a cancel request (and renew the lease) before starting the next step,
        so a cancel is honoured between steps without waiting for the next heartbeat."""
        if held.reason is not None:
            return
        try:
            beat = await self._link.runs.heartbeat(held.run_id, self._worker_id, held.attempt)
        except LeaseLost as e:
            if not held.taken_over:
                held.stop("lease_lost", str(e))
            return
        except PulserOpsError as e:  # the heartbeat thread will tell us soon enough
            log.warning("run %s: check between steps failed: %s", held.run_id, e)
            return
        if beat.cancel_requested:
            self._on_cancel(held)

    # --- the end of the run -----------------------------------------------------------------

    async def _carry_out(self, held: HeldRun, ending: Ending) -> tuple[Settled, str]:
        if isinstance(ending, TakenOver):
            return "released", "released"
        if isinstance(ending, LetGo):
            return await self._lost(held)
        if isinstance(ending, Release):
            await self._write_rows(held, ending.steps)
            await self._flush_run(held)
            if not held.begin_settle("run"):
                return await self._lost_or_released(held)
            settled = await release_run(
                self._link, self._worker_id, held, ending.reason, self._lost
            )
            return settled, settled
        return await self._complete(held, ending)

    async def _flush_run(self, held: HeldRun) -> None:
        await self._blocking(lambda: self._sink.flush_run(held.run_id))

    async def _complete(
        self, held: HeldRun, ending: Complete, *, carry: bool = True
    ) -> tuple[Settled, str]:
        if held.reason == "lease_lost" or not held.begin_settle("run"):
            return await self._lost_or_released(held)
        # Its log goes with the completion, right before its terminal event.
        carried = self._sink.take_run_now(held.run_id) if carry else []
        if carried is None:  # some are on their way: wait for them off the loop
            carried = list(await self._bookkeeping.future(lambda: self._sink.take_run(held.run_id)))
        try:
            # Every value is our own and storable already: ``decide`` made them so.
            done = await self._completer.complete(
                calls.completion_item(
                    held.run_id,
                    held.attempt,
                    ending.status,
                    ending.result,
                    error_text(ending.error),
                    ending.error_class,
                    ending.retryable,
                    [row.item() for row in ending.steps] or None,
                    [e.carried() for e in carried] or None,
                )
            )
        except TransportError as e:  # given up waiting: the worker is forced to stop
            self._sink.put_back(carried)
            log.error("run %s: not completed (%s); the sweeper will requeue it", held.run_id, e)
            return "abandoned", "abandoned"
        except Exception as e:  # refused (PulserOpsError), or a value it could not even send
            self._sink.put_back(carried)
            if carried:
                # One of its events may be what was refused: they go on their own (the sink
                # splits out a bad one), then the completion goes again without them.
                await self._flush_run(held)
                return await self._complete(held, ending, carry=False)
            if ending.status == "failed" and ending.result is None:
                log.error("run %s: could not complete: %s", held.run_id, e)
                return "abandoned", "abandoned"
            # e.g. a result the database refused: record that instead of losing the run
            # (its step rows go on their own, so a bad one cannot block the completion).
            await self._write_rows(held, ending.steps)
            return await self._complete(held, unstorable(ending, str(e)), carry=False)
        if not done.ok:
            self._sink.put_back(carried)
            held.stop("lease_lost", done.detail or "the lease moved on before completion")
            return await self._lost_or_released(held)
        return ending.status, "retried" if done.status == "queued" else ending.status

    async def _lost_or_released(self, held: HeldRun) -> tuple[Settled, str]:
        if held.taken_over:
            return "released", "released"
        return await self._lost(held)

    async def _lost(self, held: HeldRun) -> tuple[Settled, str]:
        if held.taken_over:
            return "released", "released"
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
        await self._flush_run(held)
        return "lease_lost", "lease_lost"


class Later:
    """Callbacks due after a delay, for many short-lived waits that are nearly always cancelled
    (a step's "running" row, which a step that ends first never needs).

    One ticker task looks at them a few times per delay while any are waiting, instead of a
    timer per step: registering and cancelling one is a dict insert and delete. A callback
    runs up to half a tick late, which nobody watching a step can tell."""

    TICKS_PER_DELAY = 2

    def __init__(self) -> None:
        self._due: dict[int, tuple[float, float, Callable[[], None]]] = {}
        self._next_key = 0
        self._ticker: asyncio.Task[None] | None = None

    def call(self, delay: float, callback: Callable[[], None]) -> int:
        self._next_key += 1
        self._due[self._next_key] = (time.monotonic() + delay, delay, callback)
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._tick())
        return self._next_key

    def cancel(self, key: int) -> None:
        self._due.pop(key, None)

    async def _tick(self) -> None:
        try:
            while self._due:
                step = min(delay for _, delay, _ in self._due.values()) / self.TICKS_PER_DELAY
                await asyncio.sleep(step)
                now = time.monotonic()
                for key, (when, _, callback) in list(self._due.items()):
                    if when <= now and self._due.pop(key, None) is not None:
                        callback()
        finally:
            self._ticker = None


def _missing() -> TemplateProblem:
    return TemplateProblem("missing", "no such template")


def _resolve(stopped: asyncio.Future[None]) -> None:
    if not stopped.done():
        stopped.set_result(None)


async def release_run(
    link: AsyncClient,
    worker_id: str,
    held: HeldRun,
    reason: str,
    on_lost: Callable[[HeldRun], Awaitable[tuple[Settled, str]]],
) -> Settled:
    """Give the run back to the queue (the attempt is not used up)."""
    try:
        await link.runs.release(held.run_id, worker_id, held.attempt, reason)
    except LeaseLost as e:
        held.stop("lease_lost", str(e))
        return (await on_lost(held))[0]
    except PulserOpsError as e:
        log.error("run %s: release failed (%s); the sweeper will requeue it", held.run_id, e)
        return "abandoned"
    return "released"
