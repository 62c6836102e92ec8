"""The driver interface every transport implements, and the retry rule they share."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from ..calls import Call
from ..errors import LockTimeout, TransportError
from ..files import FileStore

T = TypeVar("T")

#: Attempts for calls that are safe to repeat; other calls are sent exactly once.
RETRY_ATTEMPTS = 4


def _backoff(attempt: int) -> float:
    return float(min(2.0, 0.1 * (2**attempt)) * (0.5 + random.random() / 2))


def _again(call: Call[Any], e: TransportError, attempt: int) -> bool:
    """Whether to send ``call`` again after ``e``: a call safe to repeat, after any transport
    failure; any call after a lock timeout, which the server rolled back (nothing happened)."""
    return attempt < RETRY_ATTEMPTS - 1 and (call.retry_safe or isinstance(e, LockTimeout))


def with_retry(call: Call[Any], send: Callable[[], T]) -> T:
    """Send once, or again with backoff after a failure that ``_again`` allows."""
    attempt = 0
    while True:
        try:
            return send()
        except TransportError as e:
            if not _again(call, e, attempt):
                raise
            time.sleep(_backoff(attempt))
            attempt += 1


async def with_retry_async(call: Call[Any], send: Callable[[], Awaitable[T]]) -> T:
    attempt = 0
    while True:
        try:
            return await send()
        except TransportError as e:
            if not _again(call, e, attempt):
                raise
            await asyncio.sleep(_backoff(attempt))
            attempt += 1


@dataclass(frozen=True)
class Hint:
    """Something changed in ``table`` for these run/worker ids (None: too many, refetch);
    ``deleted``: these rows are gone (ids always given)."""

    table: str
    ids: tuple[str, ...] | None
    deleted: bool = False


@dataclass(frozen=True)
class Record:
    """A row pushed by the server (Realtime), already visible to this caller. For a DELETE
    only the primary key is known (Realtime sends no more when RLS is on)."""

    table: str
    kind: Literal["INSERT", "UPDATE", "DELETE"]
    row: dict[str, Any]


@dataclass(frozen=True)
class Ready:
    """The feed is live from now on (Realtime's "Subscribed to PostgreSQL", which comes after
    the join was acknowledged): changes before it may not have been pushed, so catch up."""


FeedItem = Hint | Record | Ready


class Transport(Protocol):
    """Synchronous driver. ``max_rows``: the most rows one reply may hold (the Supabase API's
    row cap; None over a direct connection)."""

    files: FileStore

    @property
    def max_rows(self) -> int | None: ...

    def execute(self, call: Call[T]) -> T: ...

    def close(self) -> None: ...


class AsyncTransport(Protocol):
    """Asynchronous driver, with the live feed used by subscriptions and worker wake-ups."""

    files: FileStore

    @property
    def max_rows(self) -> int | None: ...

    async def execute(self, call: Call[T]) -> T: ...

    def feed(
        self, tables: frozenset[str], *, wakeups: bool = False
    ) -> AbstractAsyncContextManager[AsyncIterator[FeedItem | str]]:
        """Open a live feed: ``Hint``/``Record`` items, and lane strings for wake-ups.

        Raises ``TransportError`` (when entering or while iterating) if the feed drops; callers
        reconnect and catch up, because a feed is only ever a hint.
        """
        ...

    async def close(self) -> None: ...
