"""``pulser-ops prune --older-than 7d``: delete finished runs and everything they own.

Deletion happens in bounded batches (one ``prune_runs`` call each, then the batch's artifact
files), so a huge backlog never holds long locks and an interrupted prune loses nothing but
time: the next one continues where it stopped.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ..client import Client
from . import parsing
from .options import with_client
from .output import counting, out
from .runs import confirm


def _prune(client: Client, older_than_seconds: float, batch: int) -> int:
    """``client.runs.prune`` with a progress line fed by its per-batch callback."""
    with counting("Pruning: {task.completed} run(s) deleted") as show:
        return client.runs.prune(older_than_seconds, batch=batch, on_batch=show)


@with_client
def prune_command(
    client: Client,
    older_than: Annotated[
        str, typer.Option("--older-than", help="Finished longer ago than this (7d, 12h).")
    ],
    batch: Annotated[int, typer.Option("--batch", min=1, max=5000, help="Runs per batch.")] = 500,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete finished runs (events, steps, artifacts and files too) older than a duration."""
    age = parsing.duration(older_than, what="--older-than")
    confirm(f"Delete every finished run older than {older_than}?", yes)
    count = _prune(client, age.total_seconds(), batch)
    out.print(f"pruned {count} run(s)", markup=False)
