"""Collecting live changes in tests: a background task drains a subscription into a list, and
the test waits (bounded, never asserting on timing) until a condition on that list holds."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from pulser_ops import Change

#: Upper bound for "eventually"; a healthy run takes well under a second.
WAIT_SECONDS = 120.0


class Collector:
    def __init__(self, changes: AsyncIterator[Change]) -> None:
        self.items: list[Change] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._drain(changes))

    async def _drain(self, changes: AsyncIterator[Change]) -> None:
        async for change in changes:
            self.items.append(change)
            self._changed.set()

    async def until(self, cond: Callable[[list[Change]], bool], what: str = "") -> list[Change]:
        # One level of wait_for only: on Python 3.11 a nested wait_for can swallow the outer
        # cancellation and hang instead of timing out.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_SECONDS
        while not cond(self.items):
            if self._task.done():
                self._task.result()  # surface the subscription's error
                raise AssertionError(f"subscription ended before {what}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"never saw {what}; got {self.describe()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(0.5, remaining))
        return self.items

    def describe(self) -> list[Any]:
        return [
            (c.table, c.kind, c.run.version if c.run else None, c.event.seq if c.event else None)
            for c in self.items
        ]

    async def close(self) -> None:
        """Cancel the subscription, insisting: a cancel that lands while an inner wait_for
        completes can be lost on Python 3.11, so re-cancel until the task is done."""
        for _ in range(100):
            self._task.cancel()
            done, _ = await asyncio.wait({self._task}, timeout=0.2)
            if done:
                break
        assert self._task.done(), "the subscription task ignored cancellation"
        if not self._task.cancelled() and self._task.exception() is not None:
            raise self._task.exception()  # type: ignore[misc]


async def feeds_ready(env: Any) -> None:
    """Until every Realtime channel of the stand-in is live ("Subscribed to PostgreSQL"); at
    once over PostgreSQL, where LISTEN is live when it returns. For a test that needs a change
    pushed rather than caught up (a deletion, which no catch-up can see)."""
    if env.sb is None:
        return
    realtime = env.sb.app.realtime
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while not (channels := [ch for c in realtime.connections for ch in c.channels.values()]) \
            or not all(ch.ready for ch in channels):
        assert loop.time() < deadline, "the Realtime channels never became ready"
        await asyncio.sleep(0.02)


def event_seqs(items: list[Change], run_id: Any = None) -> list[int]:
    return [c.event.seq for c in items
            if c.event is not None and (run_id is None or str(c.event.run_id) == str(run_id))]


def run_versions(items: list[Change], run_id: Any) -> list[int]:
    return [c.run.version for c in items if c.run is not None and str(c.run.id) == str(run_id)]
