"""Completions of a worker's runs, sent together (group commit).

Why: a worker draining short runs spends a round trip and a transaction per completion. Here
the first run to finish sends its completion at once; runs that finish while that call is in
flight queue up, and the next call sends them all with one ``complete_many``. Nobody waits for
a timer, so a lone run is not slowed down, and a busy worker batches by itself.

Each run is still fenced on its own (``ok=False`` comes back for a run whose lease moved on).
When the batch call itself is refused (bad input: one run's result the database will not
take), every run of that batch is retried alone, so one bad result cannot fail the others.

When the database cannot be reached (a restart, a failover), the batch is sent again, and
again, until it is recorded, fenced or refused: a finished run must not wait out its lease and
run a second time (or fail, on its last attempt) because the server was away for a second.
Sending a completion twice is safe: a repeat of one already recorded is answered ``ok``, and
the run's heartbeats keep its lease while it waits. Only ``give_up`` (the worker's forced stop)
ends the wait.

Those rules are written once, as a plan (:func:`_deliver`: a generator that says what to send
and how long to pause, and is told what came back), and carried out by two small drivers: the
event loop's (:class:`AsyncCompleter`, what the reference worker uses) and threads'
(:class:`Completer`, for code that completes runs from several threads).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Generator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from uuid import UUID

from .. import calls
from ..client import AsyncClient, Client
from ..client.inputs import settled_outcomes
from ..errors import TransportError
from ..instrumentation import settle
from ..models import CompleteBatchItem, Completion
from ..steps import CancelToken

log = logging.getLogger("pulser_ops.worker")

#: The SQL function takes at most this many runs per call.
MAX_BATCH = 1000
#: Pauses between sends while the database cannot be reached: first, and at most.
RETRY_PAUSE_SECONDS = (0.2, 5.0)


C = TypeVar("C")


@dataclass(frozen=True)
class _Send(Generic[C]):
    """Send these completions with ``complete_many``; the plan is told the items (or the error)."""

    completions: list[C]


@dataclass(frozen=True)
class _Pause:
    """Wait this long; the plan is told True when the worker gave up meanwhile."""

    seconds: float


Outcome = CompleteBatchItem | BaseException
_Plan = Generator["_Send[C] | _Pause", Any, list[Outcome]]


def _deliver(batch: list[C], run_of: Callable[[C], UUID]) -> _Plan[C]:
    """What became of each completion of ``batch`` (in order): its item, or the error to raise.
    ``run_of`` tells the run a completion is for."""
    pause, longest = RETRY_PAUSE_SECONDS
    while True:
        try:
            items: list[CompleteBatchItem] = yield _Send(batch)
        except TransportError as e:
            log.warning("completing %d run(s): %s; sending again in %.1fs", len(batch), e, pause)
            if (yield _Pause(pause)):
                return [e] * len(batch)  # given up (forced stop): tell everyone
            pause = min(pause * 2, longest)
            continue
        except Exception as e:  # refused (or unserialisable): find the run, the others go through
            if len(batch) == 1:
                return [e]
            out: list[Outcome] = []
            for one in batch:
                out += yield from _deliver([one], run_of)
            return out
        by_id = {i.run_id: i for i in items}
        return [
            by_id.get(run_of(c)) or RuntimeError(f"complete_runs returned nothing for {run_of(c)}")
            for c in batch
        ]


def _advance(
    plan: _Plan[C], value: Any, error: BaseException | None
) -> _Send[C] | _Pause | list[Outcome]:
    """The plan's next step, given what the last one gave (a value, or an error to raise in
    it); its answer when it is done."""
    try:
        return plan.send(value) if error is None else plan.throw(error)
    except StopIteration as done:
        return list(done.value)


def _carry_out(
    plan: _Plan[C],
    send: Callable[[list[C]], list[CompleteBatchItem]],
    pause: Callable[[float], bool],
) -> list[Outcome]:
    step = _advance(plan, None, None)
    while not isinstance(step, list):
        value: Any = None
        error: BaseException | None = None
        try:
            value = send(step.completions) if isinstance(step, _Send) else pause(step.seconds)
        except Exception as e:
            error = e
        step = _advance(plan, value, error)
    return step


async def _carry_out_async(
    plan: _Plan[C],
    send: Callable[[list[C]], Awaitable[list[CompleteBatchItem]]],
    pause: Callable[[float], Awaitable[bool]],
) -> list[Outcome]:
    step = _advance(plan, None, None)
    while not isinstance(step, list):
        value: Any = None
        error: BaseException | None = None
        try:
            sent = send(step.completions) if isinstance(step, _Send) else pause(step.seconds)
            value = await sent
        except Exception as e:
            error = e
        step = _advance(plan, value, error)
    return step


class AsyncCompleter:
    """Group commit on an event loop: ``await complete(item)`` from any number of run tasks.

    Items are in the shape ``complete_runs`` takes (:func:`pulser_ops.calls.completion_item`):
    a busy worker builds thousands a second, and a model per run cost more than the rest."""

    def __init__(self, client: AsyncClient, worker_id: str, give_up: asyncio.Event) -> None:
        self._client = client
        self._worker_id = worker_id
        self._give_up = give_up
        self._pending: list[tuple[dict[str, Any], asyncio.Future[CompleteBatchItem]]] = []
        self._sender: asyncio.Task[None] | None = None
        #: complete_runs calls made, and completions they carried (for the curious: tests, bench).
        self.calls = 0
        self.sent = 0

    async def complete(self, item: dict[str, Any]) -> CompleteBatchItem:
        """Record the completion; raises what ``runs.complete`` would for a refused call."""
        done: asyncio.Future[CompleteBatchItem] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if self._sender is None:
            # Sent from a task of its own: a run task cancelled meanwhile cannot strand the others,
            # and runs that end in this turn of the loop go in the same call.
            self._sender = asyncio.create_task(self._send_until_empty())
        return await done

    async def _send_until_empty(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                try:
                    outcomes = await _carry_out_async(
                        _deliver([c for c, _ in batch], _run_of_item), self._send, self._pause
                    )
                except Exception as e:  # a bug here must not leave run tasks waiting forever
                    outcomes = [e] * len(batch)
                for (_, f), o in zip(batch, outcomes, strict=True):
                    if f.done():
                        continue
                    if isinstance(o, BaseException):
                        f.set_exception(o)
                    else:
                        f.set_result(o)
        finally:
            self._sender = None

    async def _send(self, items: list[dict[str, Any]]) -> list[CompleteBatchItem]:
        self.calls += 1
        self.sent += len(items)
        # The ``settle`` span ``runs.complete_many`` opens (nothing unless tracing is on).
        asked = [(i["run_id"], i["attempt"], i["status"]) for i in items]
        with settle(asked, self._worker_id) as outcomes:
            done = await self._client.transport.execute(
                calls.complete_runs_items(self._worker_id, items)
            )
            outcomes.update(settled_outcomes(done))
        return done

    async def _pause(self, seconds: float) -> bool:
        if self._give_up.is_set():
            return True
        try:
            await asyncio.wait_for(self._give_up.wait(), seconds)
        except TimeoutError:
            return False
        return True


def _run_of_item(item: dict[str, Any]) -> UUID:
    return UUID(item["run_id"])


def _run_of_completion(completion: Completion) -> UUID:
    return completion.run_id


class Completer:
    """Group commit for threads: ``complete(c)`` blocks the calling thread until recorded."""

    def __init__(self, client: Client, worker_id: str, give_up: CancelToken | None = None) -> None:
        self._client = client
        self._worker_id = worker_id
        self._give_up: CancelToken = give_up or threading.Event()
        self._lock = threading.Lock()
        self._pending: list[tuple[Completion, Future[CompleteBatchItem]]] = []
        self._sending = False

    def complete(self, completion: Completion) -> CompleteBatchItem:
        """Record ``completion``; raises what ``runs.complete`` would for a refused call."""
        done: Future[CompleteBatchItem] = Future()
        with self._lock:
            self._pending.append((completion, done))
            lead = not self._sending
            self._sending = True
        if lead:
            self._send_until_empty()
        return done.result()

    def _send_until_empty(self) -> None:
        while True:
            with self._lock:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                if not batch:
                    self._sending = False
                    return
            try:
                outcomes = _carry_out(
                    _deliver([c for c, _ in batch], _run_of_completion), self._send, self._pause
                )
            except Exception as e:  # a bug here must not leave run threads waiting forever
                outcomes = [e] * len(batch)
            for (_, f), o in zip(batch, outcomes, strict=True):
                if isinstance(o, BaseException):
                    f.set_exception(o)
                else:
                    f.set_result(o)

    def _send(self, completions: list[Completion]) -> list[CompleteBatchItem]:
        return self._client.runs.complete_many(self._worker_id, completions)

    def _pause(self, seconds: float) -> bool:
        return self._give_up.is_set() or self._give_up.wait(seconds)
