"""Heartbeats on their own thread, with their own client (and so their own connections).

Why separate: a step that blocks, a python handler that hogs the CPU or a saturated
connection pool in the run threads must never delay the heartbeat, or the sweeper takes
the run away from a perfectly healthy worker. One ``heartbeat_many`` per tick covers every
run the worker holds and also marks the worker itself as seen.

A beat that fails (the database is restarting) is tried again after ``RETRY_SECONDS`` rather
than a whole interval, so the leases are renewed as soon as the database is back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..client import Client
from ..errors import PulserOpsError
from .config import WorkerConfig
from .held import HeldRun, HeldRuns

log = logging.getLogger("pulser_ops.worker")

#: After a failed beat, the next one comes this soon (or at the usual interval if sooner).
RETRY_SECONDS = 0.5


class Heartbeater:
    def __init__(
        self,
        client: Client,
        config: WorkerConfig,
        held: HeldRuns,
        *,
        on_cancel: Callable[[HeldRun], None],
        on_lost: Callable[[HeldRun], None],
    ) -> None:
        self._client = client
        self._config = config
        self._held = held
        self._on_cancel = on_cancel
        self._on_lost = on_lost
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pulser-heartbeat", daemon=True)
        self.beats = 0
        self._now = False
        #: The interval the thread is waiting on now (inf: not started).
        self._planned = float("inf")

    def start(self) -> None:
        self._thread.start()

    def kick(self) -> None:
        """Re-plan the next beat (a run was just claimed, possibly with a shorter lease)."""
        self._kick.set()

    def claimed(self, leases: list[int]) -> None:
        """Runs with these leases were just claimed: re-plan only if they make the next beat
        due sooner than planned (waking the heartbeat thread on every claim cost a thread
        hand-off per claim, for nothing when the leases are alike)."""
        if self._config.heartbeat_interval(leases) < self._planned:
            self._kick.set()

    def beat_soon(self) -> None:
        """Beat now, not at the next interval (runs adopted with a lease already running)."""
        self._now = True
        self._kick.set()

    def interval(self) -> float:
        return self._config.heartbeat_interval([h.run.lease_seconds for h in self._held.snapshot()])

    def beat(self) -> bool:
        """One heartbeat for every held run; acts on cancel requests and lost leases.
        False when the call failed."""
        held = {h.run_id: h for h in self._held.snapshot() if not h.taken_over}
        try:
            results = self._client.runs.heartbeat_many(
                self._config.worker_id, [(h.run_id, h.attempt) for h in held.values()]
            )
        except PulserOpsError as e:
            log.warning(
                "heartbeat failed (%s); retrying in %.1fs", e, min(RETRY_SECONDS, self.interval())
            )
            return False
        self.beats += 1
        for r in results:
            h = held.get(str(r.run_id))
            if h is None or h.attempt != r.attempt:
                continue
            if not r.ok:
                self._on_lost(h)
            elif r.cancel_requested:
                self._on_cancel(h)
        return True

    def _loop(self) -> None:
        # Beat when an interval has passed since the last beat. A kick (new claim, changed
        # leases) only re-plans the wait: a just-claimed run's lease is fresh, so beating it at
        # once would be a wasted round trip on every claim.
        last = float("-inf")
        ok = True
        while not self._stop.is_set():
            self._planned = self.interval()
            due = last + (self._planned if ok else min(RETRY_SECONDS, self._planned))
            now = time.monotonic()
            if now >= due or self._now:
                self._now = False
                try:
                    ok = self.beat()
                except Exception:  # never let the heartbeat thread die
                    log.exception("heartbeat loop error")
                    ok = False
                last = time.monotonic()
                continue
            self._kick.wait(due - now)
            self._kick.clear()

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
