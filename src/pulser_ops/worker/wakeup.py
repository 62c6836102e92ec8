"""Wake the claim loop when work arrives: LISTEN ``pulser_ops_wakeup`` on its own connection.

Notifications are only hints (the loop polls anyway, so a dropped connection or a missed
NOTIFY costs at most one poll interval). LISTEN needs a session of its own, outside the
transport's pool, and does not work through Supabase's transaction pooler, so this is
only started when a direct database URL is known.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

import psycopg

from ..transport.postgres import WAKEUP_CHANNEL

log = logging.getLogger("pulser_ops.worker")


class WakeupListener:
    def __init__(
        self, database_url: str, lanes: Iterable[str], on_wake: Callable[[], None]
    ) -> None:
        self._url = database_url
        self._lanes = frozenset(lanes)
        self._on_wake = on_wake
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pulser-wakeup", daemon=True)
        self.connected = threading.Event()
        self.wakeups = 0

    def start(self) -> None:
        self._thread.start()

    def _wanted(self, payload: str) -> bool:
        lanes = {x.strip() for x in payload.split(",") if x.strip()}
        return not lanes or bool(lanes & self._lanes)

    def _listen_once(self) -> None:
        with psycopg.connect(
            self._url, autocommit=True, application_name="pulser-ops-wakeup", connect_timeout=10
        ) as conn:
            conn.execute(f'listen "{WAKEUP_CHANNEL}"')
            self.connected.set()
            # The loop polls anyway, so a lost wake-up during reconnect is harmless; wake once
            # after (re)connecting in case work arrived while we were away.
            self._on_wake()
            while not self._stop.is_set():
                for n in conn.notifies(timeout=1.0):
                    if self._wanted(n.payload):
                        self.wakeups += 1
                        self._on_wake()

    def _loop(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                self._listen_once()
            except Exception as e:  # psycopg errors, OSError...: reconnect, never die
                self.connected.clear()
                log.info("wake-up listener disconnected (%s); polling until it reconnects", e)
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
