"""``pulser-ops tail ID``: follow a run's events live until it ends.

The exit status tells how it ended, so scripts can wait on a run: 0 succeeded, 1 failed,
3 cancelled. Events are read through ``AsyncClient.subscribe``, which catches up after every
reconnect; when the run reaches a terminal state, the events written with its completion are
read to the end before exiting, so the last lines are never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, cast

import typer
from rich.markup import escape
from rich.text import Text

from ..client import AsyncClient
from ..models import Change, Run, RunEvent
from .options import Connection, async_client_for, with_connection
from .output import out, status_text

EXIT_BY_STATUS = {"succeeded": 0, "failed": 1, "cancelled": 3}
LEVEL_STYLE = {"debug": "dim", "info": "", "warn": "yellow", "error": "red"}


def _print_event(e: RunEvent) -> None:
    text = Text(f"{e.at:%H:%M:%S} {e.kind:<16} {e.message}", style=LEVEL_STYLE.get(e.level, ""))
    out.print(text, highlight=False)


def _print_status(run: Run) -> None:
    extra = f" on {run.worker_id}" if run.status.value == "running" and run.worker_id else ""
    if run.error and run.is_terminal:
        extra = f": {run.error_class or 'error'}: {run.error}"
    extra = escape(extra)
    out.print(f"── run {run.id} {status_text(run.status.value)} "
              f"(attempt {run.attempt}/{run.max_attempts}){extra}")  # fmt: skip


class _Tail:
    def __init__(self, client: AsyncClient, run: Run) -> None:
        self.client = client
        self.run = run
        self.last_seq = 0

    def event(self, e: RunEvent) -> None:
        if e.seq > self.last_seq:
            self.last_seq = e.seq
            _print_event(e)

    async def drain(self) -> None:
        while True:
            page = await self.client.events.list(self.run.id, after_seq=self.last_seq, limit=1000)
            for e in page:
                self.event(e)
            if len(page) < 1000:
                return

    async def follow(self) -> int:
        _print_status(self.run)
        if not self.run.is_terminal:
            changes = cast(
                AsyncGenerator[Change, None],
                self.client.subscribe(runs=[self.run.id], events=self.run.id),
            )
            async with contextlib.aclosing(changes):  # closes the LISTEN connection at once
                await self._until_terminal(changes)
        await self.drain()
        if not self.run.is_terminal:  # pragma: no cover - subscribe only ends with the run
            return 1
        return EXIT_BY_STATUS[self.run.status.value]

    async def _until_terminal(self, changes: AsyncIterator[Change]) -> None:
        async for change in changes:
            if change.event is not None:
                self.event(change.event)
            elif change.run is not None:
                before = (self.run.status, self.run.attempt)
                self.run = change.run
                if (self.run.status, self.run.attempt) != before:
                    _print_status(self.run)
                if self.run.is_terminal:
                    return


async def _tail(conn: Connection, run_id: str) -> int:
    client = await async_client_for(conn)
    try:
        run = await client.runs.get(run_id)
        return await _Tail(client, run).follow()
    finally:
        await client.close()


@with_connection
def tail_command(
    conn: Connection,
    run_id: Annotated[str, typer.Argument(metavar="ID", help="Run id.")],
) -> None:
    """Print a run's events as they happen; exit 0 if it succeeds (1 failed, 3 cancelled)."""
    code = asyncio.run(_tail(conn, run_id))
    raise typer.Exit(code)
