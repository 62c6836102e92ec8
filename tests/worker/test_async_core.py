"""The worker's event-loop core: async handlers, a handler that raises on the loop, handlers that
block the loop or hold the GIL (heartbeats go on), a slow database (completions queue and go
again, nothing is lost), and what an observer hears."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from pulser_ops import Client, TransportError
from pulser_ops.calls import Call
from pulser_ops.steps import HandlerContext
from pulser_ops.worker import Worker
from pulser_ops.worker.observer import RunOutcome
from tests.worker.conftest import WorkerProcess, burst_worker, template, wait_for

T = TypeVar("T")
LEASE = 5  # the smallest lease the control plane accepts


def test_async_handlers_run_on_the_event_loop_and_plain_ones_on_threads(client: Client) -> None:
    client.templates.upsert(
        template(
            "mixed",
            [
                {"kind": "python", "name": "first", "handler": "aio"},
                {"kind": "python", "name": "second", "handler": "plain"},
            ],
        )
    )
    run = client.runs.create("mixed", {"who": "ops"})
    worker = burst_worker(client, listen=False)
    threads: dict[str, threading.Thread] = {}

    @worker.handler("aio")
    async def aio(ctx: HandlerContext) -> dict[str, Any]:
        threads["aio"] = threading.current_thread()
        await asyncio.sleep(0.01)
        ctx.log.info("hello from the loop", who=ctx.params["who"])
        await ctx.save_artifact_async("aio.txt", "saved without blocking the loop")
        return {"greeting": f"hi {ctx.params['who']}"}

    @worker.handler("plain")
    def plain(ctx: HandlerContext) -> str:
        threads["plain"] = threading.current_thread()
        return "done"

    assert worker.run() == 0
    done = client.runs.get(run.id)
    assert done.status == "succeeded", done.error
    assert [s["status"] for s in done.result["steps"]] == ["succeeded", "succeeded"]
    assert threads["aio"] is threading.current_thread()  # the loop ran in the caller's thread
    assert threads["plain"] is not threading.current_thread()
    assert client.artifacts.get(run.id, "aio.txt").inline_text == "saved without blocking the loop"
    logs = [e for e in client.events.list(run.id) if e.kind == "log"]
    assert [(e.message, e.data["who"]) for e in logs] == [("hello from the loop", "ops")]
    steps = client.runs.steps(run.id)
    assert [(s.name, s.status) for s in steps] == [("first", "succeeded"), ("second", "succeeded")]
    assert steps[0].output["result"] == {"greeting": "hi ops"}


def test_a_handler_that_raises_inside_the_event_loop_fails_only_its_run(client: Client) -> None:
    client.templates.upsert(
        template("boom", [{"kind": "python", "name": "boom", "handler": "boom"}], max_attempts=1)
    )
    client.templates.upsert(
        template("fine", [{"kind": "python", "name": "fine", "handler": "fine"}], max_attempts=1)
    )
    bad = client.runs.create("boom")
    good = [client.runs.create("fine") for _ in range(5)]
    worker = burst_worker(client, listen=False, concurrency=3)

    @worker.handler("boom")
    async def boom(ctx: HandlerContext) -> None:
        await asyncio.sleep(0)
        raise ValueError("no such thing")

    @worker.handler("fine")
    async def fine(ctx: HandlerContext) -> int:
        await asyncio.sleep(0.01)
        return 1

    assert worker.run() == 0
    failed = client.runs.get(bad.id)
    assert (failed.status, failed.error_class) == ("failed", "ValueError")
    assert "ValueError: no such thing" in (failed.error or "")
    [tb] = [e for e in client.events.list(bad.id) if e.kind == "log"]
    assert "raise ValueError" in tb.data["traceback"]
    assert {r.status for r in client.runs.get_many([r.id for r in good])} == {"succeeded"}
    assert worker.endings == {"failed": 1, "succeeded": 5}


def test_an_async_handler_is_cancelled_at_its_next_await(client: Client) -> None:
    client.templates.upsert(
        template("waits", [{"kind": "python", "name": "wait", "handler": "wait"}], max_attempts=1)
    )
    run = client.runs.create("waits")
    worker = burst_worker(client, listen=False, heartbeat_seconds=0.2)
    seen: list[str] = []

    @worker.handler("wait")
    async def wait(ctx: HandlerContext) -> None:
        seen.append("started")
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    t = threading.Thread(target=worker.run)
    t.start()
    try:
        wait_for("the handler to start", lambda: seen)
        client.runs.cancel(run.id, "not needed")
    finally:
        t.join(timeout=60)
    assert not t.is_alive()
    done = client.runs.get(run.id)
    assert (done.status, done.error) == ("cancelled", "cancelled: not needed")
    assert seen == ["started", "cancelled"]
    [step] = client.runs.steps(run.id)
    assert step.status == "cancelled"


def test_an_async_step_times_out_like_any_other(client: Client) -> None:
    client.templates.upsert(
        template(
            "late",
            [{"kind": "python", "name": "late", "handler": "late", "timeout_seconds": 0.3}],
            max_attempts=1,
        )
    )
    run = client.runs.create("late")
    worker = burst_worker(client, listen=False)

    @worker.handler("late")
    async def late(ctx: HandlerContext) -> None:
        await asyncio.sleep(60)

    assert worker.run() == 0
    done = client.runs.get(run.id)
    assert (done.status, done.error_class) == ("failed", "timeout")
    assert "timed out after 0.3s" in (done.error or "")


@pytest.mark.slow
def test_handlers_that_block_the_loop_or_sit_in_c_do_not_starve_heartbeats(
    client: Client, spawn_worker: Callable[..., WorkerProcess]
) -> None:
    # Three runs of three leases each, started together: one blocked in C on a handler thread,
    # one blocking the event loop in C (time.sleep in an async def), one holding the GIL and
    # the loop in pure Python. Heartbeats come from their own thread: none of them is swept.
    seconds = 3 * LEASE
    for name, handler in (("c", "block_in_c"), ("loop_c", "block_loop_in_c"), ("gil", "spin_async")):
        client.templates.upsert(
            template(
                name,
                [{"kind": "python", "name": name, "handler": handler}],
                lease_seconds=LEASE,
                max_attempts=1,
            )
        )
    runs = [
        client.runs.create(name, {"seconds": seconds}, priority=p)
        for name, p in (("c", 2), ("loop_c", 1), ("gil", 0))
    ]
    w = spawn_worker("--lanes", "A", "--concurrency", "3", "--poll-seconds", "0.2", "--burst")
    wait_for("the claims", lambda: {r.status for r in client.runs.get_many([r.id for r in runs])} == {"running"})

    swept: list[Any] = []
    beats: dict[str, set[Any]] = {str(r.id): set() for r in runs}
    while True:
        now = client.runs.get_many([r.id for r in runs])
        if all(r.is_terminal for r in now):
            break
        swept += [s for s in client.runs.sweep() if str(s.run_id) in beats]
        for r in now:
            if r.heartbeat_at is not None:
                beats[str(r.id)].add(r.heartbeat_at)
        time.sleep(0.5)

    assert w.wait() == 0
    assert swept == []
    final = client.runs.get_many([r.id for r in runs])
    assert [(r.status, r.attempt, r.sweep_count) for r in final] == [("succeeded", 1, 0)] * 3
    # Each run spanned three leases, so only heartbeats kept it.
    assert all(len(b) >= 3 for b in beats.values()), {k: len(v) for k, v in beats.items()}


class SlowDatabase:
    """Wraps a real transport: every ``complete_runs`` takes ``delay`` seconds, and the first
    ``down`` of them fail as if the database could not be reached (before anything is sent)."""

    def __init__(self, inner: Any, delay: float, down: int) -> None:
        self.inner = inner
        self.files = inner.files
        self.delay = delay
        self.down = down
        self.batches: list[int] = []
        self.refused = 0
        self._lock = threading.Lock()

    def execute(self, call: Call[T]) -> T:
        if call.fn == "complete_runs":
            time.sleep(self.delay)
            with self._lock:
                if self.refused < self.down:
                    self.refused += 1
                    raise TransportError("database connection failed: Connection refused")
                self.batches.append(len(call.args["runs"].value))
        return self.inner.execute(call)

    def close(self) -> None:
        pass


def test_completions_queue_up_while_the_database_is_slow_and_none_is_lost(
    client: Client,
) -> None:
    client.templates.upsert(
        template("quick", [{"kind": "python", "name": "q", "handler": "quick"}], max_attempts=1)
    )
    runs = client.runs.create_many([{"template": "quick", "params": {"i": i}} for i in range(40)])
    slow = SlowDatabase(client.transport, delay=0.3, down=2)
    worker = burst_worker(Client(slow), listen=False, concurrency=8)
    executed: Counter[str] = Counter()

    @worker.handler("quick")
    async def quick(ctx: HandlerContext) -> int:
        executed[ctx.run_id] += 1
        return int(ctx.params["i"])

    assert worker.run() == 0
    final = client.runs.get_many([r.id for r in runs])
    assert {(r.status, r.attempt) for r in final} == {("succeeded", 1)}
    assert all(r.result["result"] == r.params["i"] for r in final)
    assert executed == {str(r.id): 1 for r in runs}  # nothing ran twice
    assert slow.refused == 2  # two sends failed and went again
    assert sum(slow.batches) == 40
    # While one completion was on its way, the runs that ended meanwhile waited and went
    # together: far fewer calls than runs.
    assert len(slow.batches) < 20 and max(slow.batches) > 1
    assert worker.endings == {"succeeded": 40}


class Recorder:
    """An observer that remembers what it heard (from any thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.claims: list[tuple[str, str, float]] = []
        self.finished: list[tuple[str, str, RunOutcome, float]] = []
        self.steps: list[tuple[str, str, float]] = []
        self.slots_seen: list[tuple[int, int]] = []

    def runs_claimed(self, lane: str, template: str, queue_wait_seconds: float) -> None:
        with self.lock:
            self.claims.append((lane, template, queue_wait_seconds))

    def run_finished(
        self, lane: str, template: str, outcome: RunOutcome, duration_seconds: float
    ) -> None:
        with self.lock:
            self.finished.append((lane, template, outcome, duration_seconds))

    def step_finished(self, step_kind: str, outcome: str, duration_seconds: float) -> None:
        with self.lock:
            self.steps.append((step_kind, outcome, duration_seconds))

    def slots(self, used: int, total: int) -> None:
        with self.lock:
            self.slots_seen.append((used, total))


def test_an_observer_hears_claims_steps_and_endings(client: Client) -> None:
    client.templates.upsert(
        template(
            "observed",
            [
                {"kind": "shell", "name": "say", "command": ["echo", "hi"]},
                {"kind": "python", "name": "py", "handler": "flaky"},
            ],
            max_attempts=2,
            retry_backoff_seconds=0,
            retry_backoff_max_seconds=0,
        )
    )
    runs = client.runs.create_many(
        [{"template": "observed", "params": {"fail": i == 0}} for i in range(3)]
    )
    recorder = Recorder()
    worker = Worker(
        client,
        lanes="A",
        concurrency=2,
        burst=True,
        poll_seconds=0.2,
        listen=False,
        worker_id="observed",
        observer=recorder,
    )

    @worker.handler("flaky")
    def flaky(ctx: HandlerContext) -> None:
        if ctx.params["fail"] and ctx.attempt == 1:
            raise RuntimeError("first attempt fails")

    assert worker.run() == 0
    assert {r.status for r in client.runs.get_many([r.id for r in runs])} == {"succeeded"}
    # Four claims (three runs, one of them twice), each with how long it waited in the queue.
    assert len(recorder.claims) == 4
    assert all(lane == "A" and tpl == "observed" and wait >= 0 for lane, tpl, wait in recorder.claims)
    outcomes = Counter(o for _, _, o, _ in recorder.finished)
    assert outcomes == {"succeeded": 3, "retried": 1}
    assert all(d >= 0 for *_, d in recorder.finished)
    step_outcomes = Counter((kind, outcome) for kind, outcome, _ in recorder.steps)
    assert step_outcomes == {("shell", "succeeded"): 4, ("python", "succeeded"): 3, ("python", "failed"): 1}
    assert all(total == 2 and 0 <= used <= 2 for used, total in recorder.slots_seen)
    assert recorder.slots_seen[-1] == (0, 2)


def test_a_broken_observer_never_fails_a_run(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    client.templates.upsert(template("plain", [{"kind": "python", "name": "n", "handler": "noop"}]))
    run = client.runs.create("plain")

    class Broken(Recorder):
        def runs_claimed(self, lane: str, template: str, queue_wait_seconds: float) -> None:
            raise RuntimeError("exporter down")

        def run_finished(self, *a: Any) -> None:
            raise RuntimeError("exporter down")

    worker = Worker(client, lanes="A", burst=True, poll_seconds=0.2, listen=False, observer=Broken())
    assert worker.run() == 0
    assert client.runs.get(run.id).status == "succeeded"
    assert sum("observer failed" in r.message for r in caplog.records) == 1  # said once
