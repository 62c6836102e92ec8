"""Wake the claim loop when work arrives: LISTEN ``pulser_ops_wakeup`` on its own connection.

Notifications are only hints (the loop polls anyway, so a dropped connection or a missed
NOTIFY costs at most one poll interval). LISTEN needs a session of its own, outside any pool,
and does not work through Supabase's transaction pooler, so this is only started when a direct
database URL is known. It runs on the worker's event loop: waiting for a notification costs
no thread and no query.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

import psycopg

from ..transport.postgres import WAKEUP_CHANNEL

log = logging.getLogger("pulser_ops.worker")

#: Pauses before reconnecting after the connection dropped: first, and at most.
RECONNECT_SECONDS = (0.5, 30.0)


class WakeupListener:
    def __init__(
        self, database_url: str, lanes: Iterable[str], on_wake: Callable[[], None]
    ) -> None:
        self._url = database_url
        self._lanes = frozenset(lanes)
        self._on_wake = on_wake
        self.connected = asyncio.Event()
        self.wakeups = 0

    def _wanted(self, payload: str) -> bool:
        lanes = {x.strip() for x in payload.split(",") if x.strip()}
        return not lanes or bool(lanes & self._lanes)

    async def _listen_once(self) -> None:
        conn = await psycopg.AsyncConnection.connect(
            self._url, autocommit=True, application_name="pulser-ops-wakeup", connect_timeout=10
        )
        async with conn:
            await conn.execute(f'listen "{WAKEUP_CHANNEL}"')
            self.connected.set()
            # The loop polls anyway, so a lost wake-up during reconnect is harmless; wake once
            # after (re)connecting in case work arrived while we were away.
            self._on_wake()
            async for n in conn.notifies():
                if self._wanted(n.payload):
                    self.wakeups += 1
                    self._on_wake()

    async def run(self) -> None:
        """Listen until cancelled, reconnecting (with a growing pause) whenever the
        connection drops."""
        delay, longest = RECONNECT_SECONDS
        while True:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # psycopg errors, OSError...: reconnect, never die
                if self.connected.is_set():  # it was up: the first retry comes soon
                    delay = RECONNECT_SECONDS[0]
                self.connected.clear()
                log.info("wake-up listener disconnected (%s); polling until it reconnects", e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, longest)
