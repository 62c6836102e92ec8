"""Batched run events: every run's log lines and step events go out in few round trips.

Step executors call ``emit`` from whatever thread they run in (process pumps, handler
threads) and must not block on the network. The sink buffers events for *all* runs of the
worker and a single flusher thread sends them with ``events.append`` every
``interval`` seconds (or sooner when the buffer is large), so a chatty step costs a
handful of inserts per second no matter how many lines it prints.

A run that ends takes *its own* buffered events out of the sink (``take_run``) and its
completion writes them, just before the terminal event, in the same transaction: a short run
costs no append of its own. Events already on their way are waited for first, and one sender
keeps every run's events in order. ``flush_run`` (release, lease lost) waits until a run's
events are in ``run_events`` instead.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Any

from ..client import Client
from ..errors import PulserOpsError, TransportError
from ..models import EventIn

log = logging.getLogger("pulser_ops.worker")

#: The control plane refuses messages longer than this many bytes.
MAX_MESSAGE_BYTES = 16 * 1024
#: ``append_run_events`` accepts at most 5000 events per call.
MAX_BATCH = 1000


def clip(message: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    raw = message.encode()
    if len(raw) <= limit:
        return message
    return raw[: limit - 32].decode("utf-8", errors="ignore") + " …[truncated]"


class EventSink:
    """Thread-safe buffer of events with a background flusher."""

    def __init__(self, client: Client, *, interval: float = 0.25, high_water: int = 500) -> None:
        self._client = client
        self._interval = interval
        self._high_water = high_water
        self._pending: list[EventIn] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a batch was taken or sent
        #: Events per run that are buffered or on their way to the database.
        self._unsent: Counter[str] = Counter()
        self._send_lock = threading.Lock()  # one sender at a time keeps per-run order
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pulser-events", daemon=True)
        self.dropped = 0

    def start(self) -> None:
        self._thread.start()

    def add(
        self,
        run_id: str,
        kind: str,
        level: str,
        message: str,
        data: Any = None,
        *,
        attempt: int | None = None,
        worker_id: str | None = None,
    ) -> None:
        event = EventIn.model_validate(
            {
                "run_id": run_id,
                "kind": kind,
                "level": level,
                "message": clip(message),
                "data": data,
                "attempt": attempt,
                "worker_id": worker_id,
            }
        )
        with self._lock:
            self._pending.append(event)
            self._unsent[str(event.run_id)] += 1
            big = len(self._pending) >= self._high_water
        if big:
            self._wake.set()

    def flush_run(self, run_id: str, timeout: float = 30.0) -> None:
        """Return once every event of ``run_id`` added so far is in the database (or was
        dropped): called before the run is completed, so its log precedes its terminal event."""
        if not self._thread.is_alive():
            self.flush()
            return
        with self._changed:
            if not self._unsent[run_id]:
                return
            self._wake.set()
            self._changed.wait_for(lambda: not self._unsent[run_id], timeout)

    def take_run(self, run_id: str, timeout: float = 30.0) -> list[EventIn]:
        """Take ``run_id``'s buffered events out of the sink, once any of its events already on
        their way are in the database: the run's completion carries them (``put_back`` them if
        it is not recorded), so a short run needs no append of its own."""
        mine: list[EventIn] = []
        with self._changed:
            if not self._unsent[run_id]:
                return mine  # nothing buffered or on its way: no need to scan the buffer
            rest: list[EventIn] = []
            for e in self._pending:  # one pass: this run's events out, the others in order
                (mine if str(e.run_id) == run_id else rest).append(e)
            if mine:
                self._pending = rest
                self._forget(run_id, len(mine))
            if self._unsent[run_id] and self._thread.is_alive():
                self._wake.set()
                self._changed.wait_for(lambda: not self._unsent[run_id], timeout)
        return mine

    def put_back(self, events: list[EventIn]) -> None:
        """Events ``take_run`` handed out that their completion did not write: sent as usual,
        ahead of anything added since."""
        if not events:
            return
        with self._lock:
            self._pending[:0] = events
            for ev in events:
                self._unsent[str(ev.run_id)] += 1
        self._wake.set()

    def _forget(self, run_id: str, n: int) -> None:
        self._unsent[run_id] -= n
        if self._unsent[run_id] <= 0:
            del self._unsent[run_id]

    def flush(self) -> None:
        """Send everything buffered so far."""
        while self._send_some():
            pass

    def _send_some(self) -> bool:
        with self._send_lock:
            with self._lock:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            if not batch:
                return False
            try:
                self._send(batch)
            finally:
                with self._changed:
                    for ev in batch:
                        self._forget(str(ev.run_id), 1)
                    self._changed.notify_all()
            return True

    def _send(self, batch: list[EventIn]) -> None:
        for attempt in range(3):
            try:
                self._client.events.append(batch)
                return
            except TransportError as e:
                log.warning("appending %d events failed (%s); retrying", len(batch), e)
                self._stop.wait(0.2 * (attempt + 1))
            except PulserOpsError as e:
                # One bad run (e.g. pruned meanwhile) must not take the others' events down.
                if len({ev.run_id for ev in batch}) > 1:
                    for run_id in {ev.run_id for ev in batch}:
                        self._send([ev for ev in batch if ev.run_id == run_id])
                    return
                log.warning("dropping %d events of run %s: %s", len(batch), batch[0].run_id, e)
                self.dropped += len(batch)
                return
        log.error("dropping %d events after repeated transport errors", len(batch))
        self.dropped += len(batch)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the flusher must survive anything; events are best effort
                log.exception("event flusher failed")

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.flush()
