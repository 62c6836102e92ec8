"""The runs a worker currently holds, shared by the event loop, the heartbeat thread, step
threads and the shutdown logic.

Why a separate registry: three parties decide a run's fate concurrently (the heartbeat
learns about cancel requests and lost leases, the signal handler about shutdown, the run's
own task about step outcomes). Each records *why* the run must stop here, first reason wins,
and sets the run's cancel token so the step in flight stops promptly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from ..models import Run

StopReason = Literal["cancel", "lease_lost", "timeout", "shutdown"]


@dataclass
class HeldRun:
    run: Run
    token: threading.Event = field(default_factory=threading.Event)
    reason: StopReason | None = None
    detail: str = ""
    #: Who made (or is making) the final call on the run: the run thread ("run") or the
    #: forced-shutdown path ("shutdown"). Exactly one of them completes/releases the run.
    settled_by: str | None = None
    claimed_monotonic: float = field(default_factory=time.monotonic)
    #: Called (from whichever thread stops the run) after the reason is recorded: the worker's
    #: event loop learns of it here, so a step running on the loop stops at once.
    on_stop: Callable[[], None] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._run_id = str(self.run.id)  # asked for many times per run

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def attempt(self) -> int:
        return self.run.attempt

    @property
    def taken_over(self) -> bool:
        """True when the shutdown path released the run: the run thread must let it be."""
        return self.settled_by == "shutdown"

    def begin_settle(self, by: str) -> bool:
        """Claim the right to make the run's final call; False if someone else has it."""
        with self._lock:
            if self.settled_by is not None:
                return self.settled_by == by
            self.settled_by = by
            return True

    def stop(self, reason: StopReason, detail: str = "") -> bool:
        """Ask the run to stop; returns False when it was already stopping for a reason.

        A lost lease overrides any other reason: once the lease is gone the worker may
        neither complete nor release the run.
        """
        with self._lock:
            first = self.reason is None
            if first or (reason == "lease_lost" and self.reason != "lease_lost"):
                self.reason, self.detail = reason, detail
        self.token.set()
        if self.on_stop is not None:
            self.on_stop()
        return first


class HeldRuns:
    """Thread-safe map run id → :class:`HeldRun`.

    A run can be held twice for a moment: a failure that scheduled an immediate retry is
    recorded, the loop claims the run again (the next attempt), and the thread of the first
    attempt is still settling (say, sending its completion again after a lost reply). The map
    then holds the new attempt, and the old thread's ``remove`` must not take it out (the new
    attempt would lose its heartbeats, and a burst worker would stop with it running)."""

    def __init__(self) -> None:
        self._runs: dict[str, HeldRun] = {}
        self._lock = threading.Lock()
        self.changed = threading.Condition(self._lock)

    def add(self, held: HeldRun) -> None:
        with self._lock:
            self._runs[held.run_id] = held

    def remove(self, held: HeldRun) -> None:
        """Forget ``held``, unless its run is held again by a later attempt."""
        with self._lock:
            if self._runs.get(held.run_id) is held:
                del self._runs[held.run_id]
            self.changed.notify_all()

    def get(self, run_id: str) -> HeldRun | None:
        with self._lock:
            return self._runs.get(run_id)

    def snapshot(self) -> list[HeldRun]:
        with self._lock:
            return list(self._runs.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._runs)

    def wait_empty(self, timeout: float | None) -> bool:
        """Block until no run is held (True) or the timeout passes (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._runs:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self.changed.wait(left)
            return True
