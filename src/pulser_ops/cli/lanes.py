"""``pulser-ops lanes ls|pause|resume|set``: the four lanes and their limits.

A paused lane keeps its queued runs but no worker claims them; ``max_running`` caps how many
runs of the lane run at once across all workers (the claim function enforces both).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..client import Client
from ..errors import InvalidInput
from ..models import Lane
from . import parsing
from .options import with_client
from .output import age, out, show

lanes_app = typer.Typer(help="Pause, resume and limit lanes.", no_args_is_help=True)

LaneArg = Annotated[str, typer.Argument(metavar="LANE", help="A, B, C or D.")]


def _describe(lane: Lane) -> str:
    limit = "no limit" if lane.max_running is None else f"max {lane.max_running} running"
    return f"lane {lane.id}: {'paused' if lane.paused else 'active'}, {limit}"


@lanes_app.command("ls")
@with_client
def ls_command(client: Client) -> None:
    """Lanes with their queue depth and the age of their oldest queued run."""
    stats = {(s.lane, s.status): s for s in client.lanes.stats()}
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("LANE", "STATE", "MAX RUNNING", "QUEUED", "RUNNING", "OLDEST QUEUED"):
        table.add_column(col)
    for lane in client.lanes.list():
        queued = stats.get((lane.id, "queued"))
        running = stats.get((lane.id, "running"))
        table.add_row(
            lane.id,
            "[yellow]paused[/]" if lane.paused else "[green]active[/]",
            "-" if lane.max_running is None else str(lane.max_running),
            str(queued.runs if queued else 0),
            str(running.runs if running else 0),
            age(queued.oldest_age_seconds) if queued else "",
        )
    show(table)


@lanes_app.command("pause")
@with_client
def pause_command(client: Client, lane: LaneArg) -> None:
    """Stop workers claiming from LANE (queued runs wait)."""
    out.print(_describe(client.lanes.pause(parsing.lane(lane))), markup=False)


@lanes_app.command("resume")
@with_client
def resume_command(client: Client, lane: LaneArg) -> None:
    """Let workers claim from LANE again."""
    out.print(_describe(client.lanes.resume(parsing.lane(lane))), markup=False)


@lanes_app.command("set")
@with_client
def set_command(
    client: Client,
    lane: LaneArg,
    max_running: Annotated[
        int | None, typer.Option("--max-running", help="At most N runs of the lane at once.")
    ] = None,
    no_limit: Annotated[bool, typer.Option("--no-limit", help="Remove the cap.")] = False,
) -> None:
    """Cap (or uncap) how many runs of LANE may run at once."""
    if (max_running is None) == (not no_limit):
        raise InvalidInput("give exactly one of --max-running N and --no-limit")
    updated = client.lanes.set_concurrency(parsing.lane(lane), None if no_limit else max_running)
    out.print(_describe(updated), markup=False)
