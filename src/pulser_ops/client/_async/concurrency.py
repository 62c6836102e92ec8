"""Where the async surface differs by nature from the sync one.

Everything else of the client is written once, in ``client.py`` next to this file, and
``scripts/unasync.py`` generates ``_sync/client.py`` from it. Both import ``.concurrency``
relatively, so each picks up its own: this module, or its hand-written twin
``_sync/concurrency.py``, which has the same names with the sync behaviour
(``tests/client/test_parity.py`` keeps the two surfaces in step).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, ParamSpec, TypeVar

from ... import models as m
from ...subscribe import subscribe
from ...transport.base import AsyncTransport

P = ParamSpec("P")
T = TypeVar("T")

#: What ``AsyncClient.subscribe`` returns.
AsyncSubscription = AsyncIterator[m.Change]


async def run_blocking(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """File-store calls block (local disk, or HTTP to Storage): run them off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


class AsyncSubscribing:
    """How an ``AsyncClient`` subscribes: on its own transport, which has a live feed."""

    transport: AsyncTransport

    def _open_subscription(self, **filters: Any) -> AsyncSubscription:
        return subscribe(self, **filters)
