"""An async transport over a sync one: each call runs on a (daemon) thread.

Why: the reference worker's event loop talks to the control plane through an async client.
With a direct database URL it opens its own async pool; any other transport a caller hands it
(Supabase over HTTP, a test's fault-injecting wrapper) is used as it is, one call per thread
hop, so everything the worker sends still goes through the caller's transport. There is no
live feed here: the worker only LISTENs with a direct database URL, and polls otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

from ..calls import Call
from ..daemon_threads import DaemonThreads
from ..errors import TransportError
from .base import FeedItem, Transport

T = TypeVar("T")


class ThreadedTransport:
    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.files = inner.files
        self._threads = DaemonThreads("pulser-transport")

    @property
    def max_rows(self) -> int | None:
        """The inner transport's row cap (the client pages its reads under it)."""
        return self.inner.max_rows

    async def execute(self, call: Call[T]) -> T:
        return await self._threads.future(lambda: self.inner.execute(call))

    def feed(
        self, tables: frozenset[str], *, wakeups: bool = False
    ) -> AbstractAsyncContextManager[AsyncIterator[FeedItem | str]]:
        raise TransportError("no live feed over a thread: poll instead")

    async def close(self) -> None:
        """The inner transport is its owner's to close."""
        self._threads.close()
