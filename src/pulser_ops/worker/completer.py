"""Completions of a worker's run threads, sent together (group commit).

Why: a worker draining short runs spends a round trip and a transaction per completion. Here
the first thread to finish sends its completion at once; threads that finish while that call
is in flight queue up, and the next of them sends them all with one ``complete_many``. Nobody
waits for a timer, so a lone run is not slowed down, and a busy worker batches by itself.

Each run is still fenced on its own (``ok=False`` comes back for a run whose lease moved on).
When the batch call itself is refused (bad input: one run's result the database will not
take), every run of that batch is retried alone, so one bad result cannot fail the others.

When the database cannot be reached (a restart, a failover), the batch is sent again, and
again, until it is recorded, fenced or refused: a finished run must not wait out its lease and
run a second time (or fail, on its last attempt) because the server was away for a second.
Sending a completion twice is safe: a repeat of one already recorded is answered ``ok``, and
the run's heartbeats keep its lease while it waits. Only ``give_up`` (the worker's forced stop)
ends the wait.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future

from ..client import Client
from ..errors import TransportError
from ..models import CompleteBatchItem, Completion
from ..steps import CancelToken

log = logging.getLogger("pulser_ops.worker")

#: The SQL function takes at most this many runs per call.
MAX_BATCH = 1000
#: Pauses between sends while the database cannot be reached: first, and at most.
RETRY_PAUSE_SECONDS = (0.2, 5.0)


class Completer:
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
                self._send(batch)
            except Exception as e:  # a bug here must not leave run threads waiting forever
                for _, f in batch:
                    if not f.done():
                        f.set_exception(e)

    def _recorded(self, completions: list[Completion]) -> list[CompleteBatchItem]:
        """``complete_many``, sent again while the database cannot be reached."""
        pause, longest = RETRY_PAUSE_SECONDS
        while True:
            try:
                return self._client.runs.complete_many(self._worker_id, completions)
            except TransportError as e:
                if self._give_up.is_set():
                    raise
                log.warning(
                    "completing %d run(s): %s; sending again in %.1fs", len(completions), e, pause
                )
                if self._give_up.wait(pause):
                    raise
                pause = min(pause * 2, longest)

    def _send(self, batch: list[tuple[Completion, Future[CompleteBatchItem]]]) -> None:
        try:
            items = self._recorded([c for c, _ in batch])
        except TransportError as e:  # given up (forced stop): tell everyone
            for _, f in batch:
                f.set_exception(e)
            return
        except Exception as e:  # refused (or unserialisable): find the run, the others go through
            if len(batch) == 1:
                batch[0][1].set_exception(e)
                return
            for one in batch:
                self._send([one])
            return
        by_id = {i.run_id: i for i in items}
        for c, f in batch:
            item = by_id.get(c.run_id)
            if item is None:
                f.set_exception(RuntimeError(f"complete_runs returned nothing for {c.run_id}"))
            else:
                f.set_result(item)
