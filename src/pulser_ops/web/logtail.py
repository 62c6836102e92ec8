"""Live logs: one tail per (data client, run), shared by every tab that watches that run.

A tail subscribes once through the SDK (``subscribe(runs=[id], events=id)``: NOTIFY or
Realtime, with catch-up by ``seq`` after any reconnect, so nothing is lost or repeated) and
keeps the run's events in memory up to a cap in lines and bytes. Each SSE connection reads
the tail from its own position (``Last-Event-ID`` = the last ``seq`` it has), so a reconnect
resumes exactly where it stopped. When the run ends the tail reads the last events, marks
itself finished and every stream closes. The last watcher leaving stops the tail.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from uuid import UUID

from ..client import AsyncClient
from ..errors import PulserOpsError
from ..models import RunEvent


@dataclass
class _Tail:
    run_id: str
    events: list[RunEvent] = field(default_factory=list)
    last_seq: int = 0
    size: int = 0
    ended: bool = False
    capped: bool = False
    error: str | None = None
    watchers: int = 0
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    task: asyncio.Task[None] | None = None


@dataclass(frozen=True)
class Closing:
    """The stream ends: the run finished, the cap was reached, or the tail failed."""

    reason: str


class LogTails:
    def __init__(self, *, max_lines: int, max_bytes: int) -> None:
        self._tails: dict[tuple[str, str], _Tail] = {}
        self.max_lines = max_lines
        self.max_bytes = max_bytes

    @property
    def active(self) -> int:
        return len(self._tails)

    async def follow(
        self, client_key: str, client: AsyncClient, run_id: UUID, after_seq: int
    ) -> AsyncIterator[RunEvent | Closing]:
        """Events with ``seq > after_seq`` as they come, then one ``Closing``."""
        key = (client_key, str(run_id))
        tail = self._tails.get(key)
        if tail is None:
            tail = _Tail(str(run_id))
            self._tails[key] = tail
            tail.task = asyncio.create_task(self._run(client, tail))
        tail.watchers += 1
        try:
            pos = after_seq
            while True:
                async with tail.changed:
                    await tail.changed.wait_for(
                        lambda t=tail, p=pos: t.last_seq > p or t.ended  # type: ignore[misc]
                    )
                    fresh = [e for e in tail.events if e.seq > pos]
                    done = tail.ended
                for ev in fresh:
                    pos = ev.seq
                    yield ev
                if done and pos >= tail.last_seq:
                    if tail.error:
                        yield Closing(tail.error)
                    elif tail.capped:
                        yield Closing(
                            f"live log capped at {self.max_lines} lines / {self.max_bytes} bytes;"
                            " `pulser-ops tail` shows everything"
                        )
                    else:
                        yield Closing("the run ended")
                    return
        finally:
            tail.watchers -= 1
            if tail.watchers == 0 and self._tails.get(key) is tail:
                del self._tails[key]
                if tail.task is not None:
                    tail.task.cancel()
                    await asyncio.wait({tail.task}, timeout=2.0)

    def _add(self, tail: _Tail, ev: RunEvent) -> None:
        if ev.seq <= tail.last_seq or tail.capped:
            return
        size = len(ev.message.encode())
        if len(tail.events) >= self.max_lines or tail.size + size > self.max_bytes:
            tail.capped = True
            tail.ended = True
            return
        tail.events.append(ev)
        tail.size += size
        tail.last_seq = ev.seq

    async def _run(self, client: AsyncClient, tail: _Tail) -> None:
        try:
            async for change in client.subscribe(runs=[tail.run_id], events=tail.run_id):
                ended = False
                if change.event is not None:
                    self._add(tail, change.event)
                if change.run is not None and change.run.is_terminal:
                    # The terminal update commits with the run's last events: read what the
                    # feed has not delivered yet, then close.
                    while True:
                        more = await client.events.list(tail.run_id, after_seq=tail.last_seq)
                        for ev in more:
                            self._add(tail, ev)
                        if len(more) < 1000 or tail.capped:
                            break
                    ended = True
                async with tail.changed:
                    tail.ended = tail.ended or ended
                    tail.changed.notify_all()
                if tail.ended:
                    return
        except PulserOpsError as e:
            async with tail.changed:
                tail.error = f"live log stopped: {e.code}: {e}"
                tail.ended = True
                tail.changed.notify_all()
