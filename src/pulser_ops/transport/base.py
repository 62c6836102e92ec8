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
from ..errors import TransportError
from ..files import FileStore

T = TypeVar("T")

#: Attempts for calls that are safe to repeat; other calls are sent exactly once.
RETRY_ATTEMPTS = 4


def _backoff(attempt: int) -> float:
    return float(min(2.0, 0.1 * (2**attempt)) * (0.5 + random.random() / 2))


def with_retry(call: Call[Any], send: Callable[[], T]) -> T:
    """Send once, or with backoff on transport errors when the call is safe to repeat."""
    attempts = RETRY_ATTEMPTS if call.retry_safe else 1
    for attempt in range(attempts):
        try:
            return send()
        except TransportError:
            if attempt == attempts - 1:
                raise
            time.sleep(_backoff(attempt))
    raise AssertionError("unreachable")


async def with_retry_async(call: Call[Any], send: Callable[[], Awaitable[T]]) -> T:
    attempts = RETRY_ATTEMPTS if call.retry_safe else 1
    for attempt in range(attempts):
        try:
            return await send()
        except TransportError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(_backoff(attempt))
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Hint:
    """Something changed in ``table`` for these run/worker ids (None: too many, refetch)."""

    table: str
    ids: tuple[str, ...] | None


@dataclass(frozen=True)
class Record:
    """A row pushed by the server (Realtime), already visible to this caller."""

    table: str
    kind: Literal["INSERT", "UPDATE", "DELETE"]
    row: dict[str, Any]


FeedItem = Hint | Record


class Transport(Protocol):
    """Synchronous driver."""

    files: FileStore

    def execute(self, call: Call[T]) -> T: ...

    def close(self) -> None: ...


class AsyncTransport(Protocol):
    """Asynchronous driver, with the live feed used by subscriptions and worker wake-ups."""

    files: FileStore

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
