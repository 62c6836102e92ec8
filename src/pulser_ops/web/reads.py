"""Reads shared between tabs: the same partial asked for by fifty tabs is one query.

A read is keyed by who asks (their data client, since RLS may show each operator different
rows), what is read, and the broadcaster's generation. Concurrent askers await the same
in-flight query; later askers reuse its result until the next change signal or ``max_age``
(the polling floor: a change that no listener saw still shows within one poll interval).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")

#: Entries kept at most (oldest dropped first).
MAX_ENTRIES = 512


class SharedReads:
    def __init__(self, generation: Callable[[], int], *, max_age: float) -> None:
        self._generation = generation
        self._max_age = max_age
        self._entries: dict[Hashable, tuple[int, float, asyncio.Future[Any]]] = {}
        #: Reads that went to the database (for tests and bench/b_board.py).
        self.misses = 0
        self.hits = 0

    async def get(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> T:
        gen = self._generation()
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None:
            e_gen, at, fut = entry
            fresh = e_gen == gen and now - at < self._max_age
            failed = fut.done() and fut.exception() is not None
            if fresh and not failed:
                self.hits += 1
                result: T = await asyncio.shield(fut)
                return result
        self.misses += 1
        fut = asyncio.get_running_loop().create_future()
        self._entries[key] = (gen, now, fut)
        if len(self._entries) > MAX_ENTRIES:
            for old in sorted(self._entries, key=lambda k: self._entries[k][1])[:64]:
                self._entries.pop(old, None)
        try:
            value = await fetch()
        except asyncio.CancelledError:
            fut.cancel()
            self._entries.pop(key, None)
            raise
        except Exception as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: no "never retrieved" warning when nobody shared it
            self._entries.pop(key, None)
            raise
        fut.set_result(value)
        return value

    def forget(self) -> None:
        """Drop everything (after this process changed something itself)."""
        self._entries.clear()
