"""One listener per server process, fanned out to every open tab.

The broadcaster subscribes ONCE through the SDK's ``AsyncClient.subscribe()`` (LISTEN/NOTIFY
over PostgreSQL, Realtime over Supabase, both with catch-up on reconnect), debounces bursts
(250 ms, as PgQueuer does) and puts one "changed" signal in every tab's queue. The signal
carries no rows: each region of the page re-fetches its own partial (through ``SharedReads``,
so fifty tabs refreshing at once cost one query) and morphs it in.

``generation`` counts the signals; ``SharedReads`` keys its cache on it, so a read after a
change is always fresh and reads between changes are shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

from ..client import AsyncClient
from ..errors import PulserOpsError
from .config import DEBOUNCE_SECONDS

log = logging.getLogger(__name__)

#: A tab that does not read its signals for this many is slow; older signals are dropped
#: (one pending "changed" says all there is to say).
QUEUE_SIZE = 4
#: Seconds between SSE keep-alive comments (proxies close idle streams).
KEEPALIVE_SECONDS = 15.0


class Broadcaster:
    def __init__(self, client: AsyncClient | None, *, debounce: float = DEBOUNCE_SECONDS) -> None:
        self._client = client
        self._debounce = debounce
        self._subscribers: set[asyncio.Queue[str]] = set()
        self._pending: set[str] = set()
        self._flush: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self.generation = 0
        #: Signals sent since start (for tests and the health endpoint).
        self.signals = 0

    @property
    def listening(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def tabs(self) -> int:
        return len(self._subscribers)

    async def start(self) -> None:
        if self._client is not None and self._task is None:
            self._task = asyncio.create_task(self._listen(self._client), name="pulser-ops-board")

    async def stop(self) -> None:
        tasks = {t for t in (self._task, self._flush) if t is not None}
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: a query cancelled mid-flight may take its time to unwind; shutting the
            # board down must not wait on it (the client's close ends it anyway).
            await asyncio.wait(tasks, timeout=2.0)
        self._task = self._flush = None

    async def _listen(self, client: AsyncClient) -> None:
        while True:
            try:
                async for change in client.subscribe(runs=True, workers=True):
                    self.mark(change.table)
            except asyncio.CancelledError:
                raise
            except PulserOpsError as e:  # subscribe() reconnects by itself; this is a bug guard
                log.warning("board listener stopped (%s); restarting", e)
                await asyncio.sleep(1.0)

    def mark(self, topic: str) -> None:
        """Something changed: one signal goes out ``debounce`` seconds from the first mark."""
        self._pending.add(topic)
        if self._flush is None or self._flush.done():
            self._flush = asyncio.get_running_loop().create_task(self._after_debounce())

    async def _after_debounce(self) -> None:
        await asyncio.sleep(self._debounce)
        topics, self._pending = sorted(self._pending), set()
        self.generation += 1
        self.signals += 1
        payload = json.dumps({"topics": topics, "generation": self.generation})
        for queue in self._subscribers:
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(payload)

    async def stream(self) -> AsyncIterator[dict[str, str]]:
        """Events for one tab, as sse-starlette wants them."""
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._subscribers.add(queue)
        try:
            hello = {"generation": self.generation, "listening": self.listening}
            yield {"event": "hello", "data": json.dumps(hello)}
            while True:
                yield {"event": "change", "data": await queue.get()}
        finally:
            self._subscribers.discard(queue)
