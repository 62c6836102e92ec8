"""Run an async operation from a worker thread, aborting it on cancel or timeout.

httpx and the MCP client are async; cancelling an asyncio task is the only way to
abort a blocked read promptly (closing a sync client from another thread is not).
Each call gets its own event loop, so executors stay plain blocking functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from pulser_ops.errors import StepCancelled, StepTimeout
from pulser_ops.steps.context import CancelToken

T = TypeVar("T")

_POLL = 0.05


def run_cancellable(
    make: Callable[[], Coroutine[Any, Any, T]],
    *,
    token: CancelToken,
    timeout_seconds: float | None,
    what: str,
) -> T:
    """Run ``make()`` to completion; raise StepCancelled/StepTimeout if stopped first.

    The coroutine's own cleanup (``finally``/``async with``) runs before this returns,
    e.g. the MCP stdio client terminates its server process.
    """

    async def supervise() -> T:
        deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
        task = asyncio.create_task(make())
        stop: StepCancelled | StepTimeout | None = None
        while not task.done():
            await asyncio.wait({task}, timeout=_POLL)
            if task.done():
                break
            if token.is_set():
                stop = StepCancelled(f"{what} cancelled")
            elif deadline is not None and time.monotonic() >= deadline:
                stop = StepTimeout(f"{what} timed out after {timeout_seconds:g}s")
            if stop is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                raise stop
        return task.result()

    return asyncio.run(supervise())
