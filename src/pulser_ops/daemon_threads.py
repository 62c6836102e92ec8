"""Long-lived daemon threads, made on demand and reused: the worker's run threads and the
threads that call Python step handlers.

Why not a new thread per run or per handler call: starting one sits between the claim and
the user's code, and on a busy machine it is a visible share of pickup latency. Why not
``ThreadPoolExecutor``: its threads are not daemons, so a step still running after a forced
shutdown would keep the process from exiting, and its size is fixed, so a handler abandoned
after ignoring cancellation would hold a slot forever. Here a busy (or abandoned) thread
just means the next task gets a new one; how much runs at once is decided by the caller
(the claim loop never holds more than ``concurrency`` runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

log = logging.getLogger("pulser_ops")

T = TypeVar("T")


class DaemonThreads:
    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._idle = 0
        self._threads: list[threading.Thread] = []
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()

    def submit(self, fn: Callable[[], None]) -> None:
        with self._lock:
            if self._idle > 0:
                self._idle -= 1  # that waiting thread takes it
                self._queue.put(fn)
                return
            t = threading.Thread(
                target=self._loop,
                args=(fn,),
                name=f"{self._name}-{len(self._threads)}",
                daemon=True,
            )
            self._threads.append(t)
        t.start()

    def call(self, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn`` on one of the threads; its result (or exception) lands in the future."""
        done: Future[T] = Future()

        def run() -> None:
            try:
                done.set_result(fn())
            except BaseException as e:
                done.set_exception(e)

        self.submit(run)
        return done

    def future(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """``fn()`` on one of the threads, awaitable from the running event loop (which hears of
        the result through ``call_soon_threadsafe``). Unlike ``asyncio.to_thread``, a call still
        running when the loop ends does not keep the loop (or the process) from finishing."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()

        def settle(value: Any, error: BaseException | None) -> None:
            if done.done():
                return
            if error is None:
                done.set_result(value)
            else:
                done.set_exception(error)

        def run() -> None:
            try:
                value = fn()
            except BaseException as e:
                error: BaseException | None = e
                value = None
            else:
                error = None
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(settle, value, error)

        self.submit(run)
        return done

    def _loop(self, fn: Callable[[], None] | None) -> None:
        while fn is not None:
            try:
                fn()
            except BaseException:  # a run's own code handles its errors; this is a last guard
                log.exception("%s: unexpected error", threading.current_thread().name)
            with self._lock:
                self._idle += 1
            fn = self._queue.get()

    def close(self) -> None:
        """Let every thread end once it is done with its run (none is waited for)."""
        with self._lock:
            n = len(self._threads)
        for _ in range(n):
            self._queue.put(None)
