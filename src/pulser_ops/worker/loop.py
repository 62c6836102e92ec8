"""``Worker``: claim runs, run them, complete them, shut down cleanly, on one event loop.

What runs where, and why:

- **one asyncio event loop** (the caller's thread) owns claiming (claims sized to the free
  slots), the runs themselves (a task each), completions (group-committed, see
  :mod:`.completer`) and LISTEN wake-ups, over its own async connections (:func:`.clients.
  open_link`). A short run costs the loop a share of a claim, its steps, and a share of a
  completion that carries its events and last step row: no thread hand-off on the way;
- **steps that block** run on threads: shell, docker and mcp executors, plain (``def``)
  python handlers; ``async def`` handlers and http steps run on the loop itself
  (:mod:`pulser_ops.steps.async_runner`). No database transaction is ever open while user
  code runs: every call is one autocommit statement;
- **heartbeats** come from a thread of their own with its own connection (:mod:`.heartbeat`),
  not from the loop: an ``async def`` handler that blocks the loop (a CPU-bound loop, a
  ``time.sleep``), a handler thread spinning in pure Python, or one blocked in a C call that
  releases the GIL cannot delay them. (A C extension that *holds* the GIL for longer than a
  third of the lease stops every thread of the process, heartbeats included: such work belongs
  in a ``shell`` step, see docs/ARCHITECTURE.md);
- **event appends** go from the event sink's flusher thread (:mod:`.events`); most runs have
  none, their events ride with their completion.

A claim that fails for want of the database (a restart, a failover) may have committed just
as the connection died: the runs are then the worker's without it knowing, and would sit out
their lease (a single-attempt run then fails without ever running). So after such a failure,
before it claims again, the worker asks the database which runs it holds under its worker id
(``list_held_runs``) and adopts the ones it does not know (it executes them under the claim's
attempt), or releases them if it is stopping. Runs it started itself and gave up on
("abandoned") are never adopted: they were executed once, and the sweeper settles them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import Any

from .. import calls
from ..client import AsyncClient
from ..errors import PulserOpsError, TransportError
from ..models import Run
from ..speckit.handlers import registry as speckit_handlers
from ..steps import HandlerContext, HandlerRegistry, StepOptions
from .clients import ClientOrSettings, WorkerClients, open_clients, open_link
from .completer import AsyncCompleter
from .config import WorkerConfig, WorkerConfigError
from .events import EventSink
from .executor import RunExecutor, Settled, release_run
from .health import Health, HealthServer
from .heartbeat import Heartbeater
from .held import HeldRun, HeldRuns
from .observer import RunOutcome, WorkerObserver
from .observing import GuardedObserver
from .templates import TemplateCache
from .wakeup import WakeupListener

log = logging.getLogger("pulser_ops.worker")

#: When a run ends while others are still running, how long the claim loop may wait for them
#: to end too before it claims. Claiming the moment each run ended cost one claim round trip
#: per run (the claim is most of a short run's cost); a few milliseconds let one claim fill
#: several slots, like Oban's dispatch cooldown and River's fetch cooldown. Wake-ups for new
#: work and the poll timer never wait, so an idle worker claims at once.
CLAIM_COOLDOWN_SECONDS = 0.005

Handler = Callable[[HandlerContext], Any]

#: Environment variables never passed on to step processes: templates are code written by
#: operators, and the worker's service credentials are not theirs to read.
SECRET_ENV = frozenset(
    {
        "PULSER_OPS_DATABASE_URL",
        "PULSER_OPS_ACCESS_TOKEN",
        "SUPABASE_SERVICE_ROLE_KEY",
        "SUPABASE_SECRET_KEY",
        "SUPABASE_DB_PASSWORD",
        "DATABASE_URL",
        "PGPASSWORD",
    }
)

#: After the grace period (or a second signal), how long steps get to react to SIGTERM
#: before the worker releases their runs itself.
ABORT_WAIT_SECONDS = 3.0


def step_base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in SECRET_ENV}


async def _noop(ctx: HandlerContext) -> None:
    """The built-in ``noop`` handler used by the seed template of the same name."""
    return None


#: Handlers every reference worker has: ``noop`` and the spec kit run types (seed.sql).
BUILTIN_HANDLERS: dict[str, Handler] = {
    "noop": _noop,
    **{name: speckit_handlers.get(name) for name in speckit_handlers.names()},
}


class Worker:
    """A reference worker.

    >>> worker = Worker(client, lanes="A,B", concurrency=4)
    >>> @worker.handler("resize")
    ... def resize(ctx): return {"ok": True}         # runs on a thread
    >>> @worker.handler("notify")
    ... async def notify(ctx): return {"sent": True}  # runs on the worker's event loop
    >>> worker.run()   # blocks until SIGTERM/SIGINT (or, with burst=True, an empty queue)

    ``await worker.run_async()`` does the same inside an event loop you already run (it does
    not install signal handlers). ``listen=False`` turns off LISTEN wake-ups (polling alone is
    correct, only slower); ``step_options`` replaces the executors' defaults (e.g. the base
    environment of steps, which by default is the worker's own minus its database and Supabase
    secrets); ``observer`` hears what the worker does (claims, steps, endings, slots: see
    :mod:`.observer`), for metrics and tracing.
    """

    def __init__(
        self,
        client_or_settings: ClientOrSettings = None,
        *,
        config: WorkerConfig | None = None,
        lanes: str | list[str] | tuple[str, ...] | None = None,
        concurrency: int | None = None,
        worker_id: str | None = None,
        lease_seconds: int | None = None,
        heartbeat_seconds: float | None = None,
        poll_seconds: float | None = None,
        shutdown_grace_seconds: float | None = None,
        burst: bool | None = None,
        registry: HandlerRegistry | None = None,
        workdir: Path | None = None,
        step_options: StepOptions | None = None,
        listen: bool = True,
        observer: WorkerObserver | None = None,
    ) -> None:
        if isinstance(lanes, str):
            lanes = [x.strip().upper() for x in lanes.split(",") if x.strip()]
        self.config = (config or WorkerConfig()).with_overrides(
            lanes=tuple(lanes) if lanes is not None else None,
            concurrency=concurrency,
            worker_id=worker_id,
            lease_seconds=lease_seconds,
            heartbeat_seconds=heartbeat_seconds,
            poll_seconds=poll_seconds,
            shutdown_grace_seconds=shutdown_grace_seconds,
            burst=burst,
        )
        self._source = client_or_settings
        self._listen = listen
        self.registry = registry or HandlerRegistry()
        self._workdir = workdir
        self.observer = GuardedObserver(observer)
        #: Set by a forced stop: steps being stopped get SIGKILL at once, not after their grace.
        self._kill_now = threading.Event()
        options = step_options or StepOptions(base_env=step_base_env())
        if options.kill_now is None:
            options = dataclasses.replace(options, kill_now=self._kill_now)
        self._step_options = options
        self.held = HeldRuns()
        self._stopping = threading.Event()
        self._forced = threading.Event()
        self._stop_reason = ""
        self.endings: dict[str, int] = {}
        #: A claim failed for want of the database: it may have committed unheard.
        self._claim_unheard = False
        #: (run id, attempt) of runs this worker started and abandoned: never adopt them.
        self._abandoned: set[tuple[str, int]] = set()
        self._clients: WorkerClients | None = None
        self._sink: EventSink | None = None
        # The event loop's own state: made when the loop starts (``_main``).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kick: asyncio.Event | None = None
        self._ended: asyncio.Event | None = None
        self._give_up: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        cfg = self.config
        self.health = Health(
            cfg.worker_id,
            cfg.concurrency,
            cfg.poll_seconds,
            held=lambda: len(self.held),
            stopping=self._stopping.is_set,
        )
        #: The running health endpoint (``health_port`` set), e.g. for its ``port``.
        self.health_server: HealthServer | None = None
        #: [issue 17 observer] metrics/tracing hooks; never raise into the worker
        self.observer = GuardedObserver(observer)
        for ref in self.config.handlers:
            self.load_handlers(ref)

    # --- handlers ---------------------------------------------------------------------------

    def handler(self, name: str) -> Callable[[Handler], Handler]:
        """Decorator: register a python handler for ``{"kind": "python", "handler": name}``.
        An ``async def`` handler runs on the worker's event loop (it must not block: use
        ``await``); a plain one runs on a thread."""
        return self.registry.register(name)

    def load_handlers(self, ref: str) -> None:
        """Import ``module[:attribute]``: a ``HandlerRegistry`` is merged in, a callable is
        called with this worker; a bare module may define ``registry`` or ``setup``."""
        module_name, _, attr = ref.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise WorkerConfigError(f"handlers: cannot import {module_name!r} ({e})") from None
        names = [attr] if attr else ["registry", "setup"]
        for name in names:
            obj = getattr(module, name, None)
            if isinstance(obj, HandlerRegistry):
                for h in obj.names():
                    if h in self.registry:
                        raise WorkerConfigError(f"handlers: {ref!r} registers {h!r} again")
                    self.registry.add(h, obj.get(h))
                return
            if callable(obj):
                obj(self)
                return
        raise WorkerConfigError(
            f"handlers: {ref!r} names no HandlerRegistry or setup(worker) callable"
        )

    # --- control ----------------------------------------------------------------------------

    def stop(self, *, force: bool = False, reason: str = "stop requested") -> None:
        """Stop claiming and drain (``force``: stop steps and release runs at once).

        Safe to call from a signal handler or any thread.
        """
        if force or self._stopping.is_set():
            self._forced.set()
        self._stop_reason = self._stop_reason or reason
        self._stopping.set()
        self._wake()

    def _wake(self) -> None:
        """Wake the claim loop (from any thread)."""
        loop, kick = self._loop, self._kick
        if loop is not None and kick is not None and not loop.is_closed():
            with suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(kick.set)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._stopping.is_set():
            log.warning("%s again: stopping steps and releasing runs now", name)
        else:
            log.info(
                "%s: no new claims; waiting up to %gs for running steps",
                name,
                self.config.shutdown_grace_seconds,
            )
        self.stop(reason=f"{name} received")

    @contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    # --- main -------------------------------------------------------------------------------

    def run(self) -> int:
        """Work until stopped; returns the exit code (0 graceful, 130 forced)."""
        with self._signals():
            return asyncio.run(self.run_async())

    @contextmanager
    def _health_endpoint(self) -> Iterator[None]:
        cfg = self.config
        if cfg.health_port is None:
            yield
            return
        try:
            server = HealthServer(self.health, cfg.health_host, cfg.health_port).start()
        except OSError as e:
            raise WorkerConfigError(
                f"health_port: cannot listen on {cfg.health_host}:{cfg.health_port} "
                f"({e.strerror or e})"
            ) from None
        self.health_server = server
        log.info("health endpoint: http://%s:%d/healthz and /readyz", cfg.health_host, server.port)
        try:
            yield
        finally:
            server.close()
            self.health_server = None

    async def run_async(self) -> int:
        """``run`` inside a running event loop (no signal handlers: call ``stop``)."""
        for name, fn in BUILTIN_HANDLERS.items():
            if name not in self.registry:
                self.registry.add(name, fn)
        with self._health_endpoint():
            clients = await asyncio.to_thread(open_clients, self._source)
            self._clients = clients
            try:
                return await self._main(clients)
            finally:
                await asyncio.to_thread(clients.close)
                self._clients = None

    async def _main(self, clients: WorkerClients) -> int:
        cfg = self.config
        self._loop = asyncio.get_running_loop()
        self._kick = asyncio.Event()
        self._ended = asyncio.Event()
        self._give_up = asyncio.Event()
        if self._stopping.is_set():
            self._kick.set()
        link = await open_link(clients.main)
        sink = EventSink(clients.main)
        self._sink = sink
        executor = RunExecutor(
            link,
            clients.main,
            sink,
            AsyncCompleter(link, cfg.worker_id, self._give_up),
            TemplateCache(link),
            self.registry,
            self._step_options,
            cfg.worker_id,
            self._workdir,
            observer=self.observer,
            on_cancel=self._on_cancel,
        )
        heart = Heartbeater(
            clients.heartbeat, cfg, self.held, on_cancel=self._on_cancel, on_lost=self._on_lost
        )
        listener: asyncio.Task[None] | None = None
        try:
            await self._register(link)
            if clients.database_url and self._listen:
                wakeups = WakeupListener(clients.database_url, cfg.lanes, self._kick.set)
                listener = asyncio.create_task(wakeups.run())
            sink.start()
            heart.start()
            log.info(
                "worker %s: lanes %s, concurrency %d%s",
                cfg.worker_id,
                ",".join(cfg.lanes),
                cfg.concurrency,
                ", burst" if cfg.burst else "",
            )
            await self._claim_loop(link, executor, heart)
            if self._claim_unheard:  # stopping: give back what a lost claim took
                await self._adopt_unheard(link, executor, heart)
            await self._drain(link)
        finally:
            if listener is not None:
                listener.cancel()
                with suppress(asyncio.CancelledError):
                    await listener
            await _off_loop(heart.stop)
            await _off_loop(sink.close)
            with suppress(PulserOpsError):
                await link.workers.deregister(cfg.worker_id, "stopped")
            await executor.close()
            await link.close()
            self._loop = None
        log.info("worker %s stopped: %s", cfg.worker_id, self.summary())
        return 130 if self._forced.is_set() else 0

    def summary(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(self.endings.items())) or "no runs"

    async def _register(self, link: AsyncClient) -> None:
        from .. import __version__

        await link.workers.register(
            self.config.worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            lanes=self.config.lanes,
            version=__version__,
            concurrency=self.config.concurrency,
            metadata={
                "handlers": self.registry.names(),
                "burst": self.config.burst,
                # the dead-worker alert and fleet_metrics judge staleness by this interval
                "heartbeat_seconds": self.config.heartbeat_interval([]),
            },
        )

    async def _wait_kick(self, seconds: float) -> None:
        """Until woken (new work, a run ended, stop) or ``seconds`` passed."""
        assert self._kick is not None
        with suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._kick.wait()

    async def _claim_loop(
        self, link: AsyncClient, executor: RunExecutor, heart: Heartbeater
    ) -> None:
        cfg = self.config
        assert self._kick is not None
        backoff = 0.5
        while not self._stopping.is_set():
            self.health.turn()
            self._kick.clear()
            await self._let_slots_gather()
            if self._claim_unheard and not await self._adopt_unheard(link, executor, heart):
                await self._wait_kick(backoff)
                backoff = min(backoff * 2, max(cfg.poll_seconds, 5.0))
                continue
            free = cfg.concurrency - len(self.held)
            got: list[Run] = []
            if free > 0:
                try:
                    got = await link.runs.claim(
                        cfg.worker_id, lanes=cfg.lanes, limit=free, lease_seconds=cfg.lease_seconds
                    )
                    backoff = 0.5
                    self.health.claimed()
                except PulserOpsError as e:
                    self.health.claim_failed(f"{e.code}: {e}")
                    if isinstance(e, TransportError):
                        self._claim_unheard = True  # it may have committed as the link died
                    log.warning("claim failed (%s); retrying in %.1fs", e, backoff)
                    await self._wait_kick(backoff)
                    backoff = min(backoff * 2, max(cfg.poll_seconds, 5.0))
                    continue
                for run in got:
                    self._start(executor, run)
                if got:
                    heart.claimed([r.lease_seconds for r in got])  # a shorter lease? re-plan
                elif cfg.burst and len(self.held) == 0:
                    log.info("burst: nothing left to claim and nothing running")
                    self.stop(reason="burst finished")
                    return
            if got and len(got) == free:
                continue  # there may be more: claim again as soon as a slot frees up
            await self._wait_kick(cfg.poll_seconds)

    async def _adopt_unheard(
        self, link: AsyncClient, executor: RunExecutor, heart: Heartbeater
    ) -> bool:
        """After a claim that failed for want of the database: adopt (or, when stopping,
        release) the runs the database has running under this worker id that the worker does
        not know. False when the database cannot tell yet."""
        cfg = self.config
        # Known runs are read *before* asking: a run that ends in between is no longer
        # running in the database's answer, so it cannot be mistaken for an unheard one.
        known = {h.run_id for h in self.held.snapshot()}
        try:
            running = await link.transport.execute(calls.list_held_runs(cfg.worker_id))
        except PulserOpsError as e:
            log.warning("cannot list the runs held by %s yet (%s)", cfg.worker_id, e)
            return False
        self._claim_unheard = False
        self._abandoned &= {(str(r.id), r.attempt) for r in running}
        adopted = 0
        for run in running:
            rid = str(run.id)
            if rid in known or (rid, run.attempt) in self._abandoned:
                continue
            if self._stopping.is_set() or len(self.held) >= cfg.concurrency:
                why = f"worker {cfg.worker_id} is stopping" if self._stopping.is_set() else "full"
                settled = await release_run(
                    link,
                    cfg.worker_id,
                    HeldRun(run),
                    f"claimed by a call whose reply was lost; {why}",
                    _nothing_to_say,
                )
                log.warning(
                    "run %s attempt %d: claimed by a call whose reply was lost: %s",
                    rid,
                    run.attempt,
                    settled,
                )
                if settled == "abandoned":  # the release itself failed: look again later
                    self._claim_unheard = True
                continue
            log.warning(
                "run %s attempt %d: claimed by a call whose reply was lost; adopting it",
                rid,
                run.attempt,
            )
            self._start(executor, run)
            adopted += 1
        if adopted:
            heart.beat_soon()  # the claim's lease has been running since it committed
        return True

    async def _let_slots_gather(self) -> None:
        """After a run ended while others still run, wait (at most CLAIM_COOLDOWN_SECONDS) for
        them to end too: the next claim then fills all the freed slots at once. A wake-up for
        new work or the poll timer never waits here, so an idle worker claims at once."""
        ended = self._ended
        assert ended is not None
        if not ended.is_set():
            return
        ended.clear()
        deadline = time.monotonic() + CLAIM_COOLDOWN_SECONDS
        while len(self.held) > 0 and not self._stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                async with asyncio.timeout(left):
                    await ended.wait()
            except TimeoutError:
                return
            ended.clear()

    def _start(self, executor: RunExecutor, run: Run) -> None:
        held = HeldRun(run)
        if run.cancel_requested:
            held.stop("cancel", run.cancel_reason or "cancel requested")
        self.held.add(held)
        # queue wait: from when the run could first be claimed (created, or its run_after)
        if run.claimed_at is not None:
            ready = max(run.available_at, run.created_at)
            waited = (run.claimed_at - ready).total_seconds()
            self.observer.runs_claimed(run.lane, run.template, max(0.0, waited))
        self.observer.slots(len(self.held), self.config.concurrency)
        task = asyncio.create_task(self._execute(executor, held))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, executor: RunExecutor, held: HeldRun) -> None:
        settled: Settled = "abandoned"
        outcome: RunOutcome = "abandoned"
        try:
            settled, said = await executor.execute(held)
            outcome = _outcome(said)
        except Exception:
            log.exception("run %s: worker error; the sweeper will requeue it", held.run_id)
        finally:
            self.endings[settled] = self.endings.get(settled, 0) + 1
            if settled == "abandoned":  # before it leaves ``held``: see _adopt_unheard
                self._abandoned.add((held.run_id, held.attempt))
            self.held.remove(held)  # not a later attempt of the same run (see HeldRuns)
            assert self._ended is not None and self._kick is not None
            self._ended.set()
            self._kick.set()
            self.observer.run_finished(
                held.run.lane,
                held.run.template,
                outcome,
                time.monotonic() - held.claimed_monotonic,
            )
            self.observer.slots(len(self.held), self.config.concurrency)
        log.info("run %s attempt %d: %s", held.run_id, held.attempt, settled)

    # --- heartbeat callbacks (heartbeat thread, or the loop between steps) --------------------

    def _on_cancel(self, held: HeldRun) -> None:
        if held.stop("cancel", "cancel requested") and self._sink is not None:
            self._sink.add(
                held.run_id,
                "cancelling",
                "warn",
                f"worker {self.config.worker_id} is stopping the run on a cancel request "
                "(SIGTERM to the step's process group, SIGKILL after its grace)",
                {"worker_id": self.config.worker_id},
                attempt=held.attempt,
                worker_id=self.config.worker_id,
            )

    def _on_lost(self, held: HeldRun) -> None:
        held.stop(
            "lease_lost",
            "heartbeat refused: the run was swept, completed or claimed by another worker",
        )

    # --- shutdown ---------------------------------------------------------------------------

    async def _wait_empty(self, seconds: float) -> bool:
        """Until no run is held (True) or ``seconds`` passed (False)."""
        deadline = time.monotonic() + seconds
        while len(self.held) > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await self._wait_kick(min(left, 0.2))
            assert self._kick is not None
            self._kick.clear()
        return True

    async def _drain(self, link: AsyncClient) -> None:
        cfg = self.config
        if len(self.held) == 0:
            return
        with suppress(PulserOpsError):
            await link.workers.deregister(cfg.worker_id, "draining")
        deadline = time.monotonic() + cfg.shutdown_grace_seconds
        while not self._forced.is_set() and time.monotonic() < deadline:
            if await self._wait_empty(min(0.2, max(0.0, deadline - time.monotonic()))):
                return
        forced = self._forced.is_set()
        if forced:
            self._give_up_now()
        grace = f"shutdown grace of {cfg.shutdown_grace_seconds:g}s ran out"
        why = "second signal" if forced else grace
        for h in self.held.snapshot():
            h.stop("shutdown", f"worker {cfg.worker_id} stopping ({why})")
        if not forced and await self._wait_empty(ABORT_WAIT_SECONDS):
            return
        self._give_up_now()  # steps still running after SIGTERM: SIGKILL, never orphans
        for h in self.held.snapshot():
            if h.begin_settle("shutdown"):
                settled = await release_run(
                    link, cfg.worker_id, h, f"worker stopping ({why})", _nothing_to_say
                )
                log.info("run %s: %s by the shutdown path", h.run_id, settled)
        await self._wait_empty(2.0)  # let steps get their signal and their tasks wind down

    def _give_up_now(self) -> None:
        """A forced stop: steps get SIGKILL at once, completions stop waiting for the database."""
        self._kill_now.set()
        if self._give_up is not None:
            self._give_up.set()


async def _nothing_to_say(held: HeldRun) -> tuple[Settled, str]:
    """A run released by the shutdown or adoption path whose lease had moved on."""
    return "lease_lost", "lease_lost"


def _outcome(said: str) -> RunOutcome:
    known: dict[str, RunOutcome] = {
        "succeeded": "succeeded",
        "failed": "failed",
        "cancelled": "cancelled",
        "retried": "retried",
        "released": "released",
        "lease_lost": "lease_lost",
    }
    return known.get(said, "abandoned")


async def _off_loop(fn: Callable[[], None]) -> None:
    """A blocking call (a thread join, a final flush) off the event loop."""
    done = asyncio.get_running_loop().create_future()

    def run() -> None:
        try:
            fn()
        finally:
            with suppress(RuntimeError):
                done.get_loop().call_soon_threadsafe(_set_done, done)

    threading.Thread(target=run, name="pulser-stopping", daemon=True).start()
    await done


def _set_done(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)
