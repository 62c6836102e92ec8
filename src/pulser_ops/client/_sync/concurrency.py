"""Where the sync surface differs by nature from the async one: the hand-written twin of
``_async/concurrency.py`` (the same names), imported by the generated ``client.py`` here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from ...errors import InvalidInput
from ...subscribe import SubscriberFactory, SyncSubscription
from ...transport.base import Transport

P = ParamSpec("P")
T = TypeVar("T")

#: What ``Client.subscribe`` returns: an iterator with ``next(timeout=...)`` and ``close()``.
Subscription = SyncSubscription


def run_blocking(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """File-store calls block, and so does everything on this surface: call it here."""
    return fn(*args, **kwargs)


class Subscribing:
    """How a ``Client`` subscribes: a sync transport has no live feed, so the async machinery
    runs on a helper thread over an async client of its own."""

    transport: Transport
    #: Opens an ``AsyncClient`` like this client, on the subscription's thread; set by
    #: ``pulser_ops.connect()`` (a client built otherwise cannot subscribe).
    _subscribe_factory: SubscriberFactory | None = None

    def _open_subscription(self, **filters: Any) -> Subscription:
        if self._subscribe_factory is None:
            raise InvalidInput(
                "this client was not built by pulser_ops.connect(); it cannot subscribe"
            )
        return SyncSubscription(self._subscribe_factory, **filters)
