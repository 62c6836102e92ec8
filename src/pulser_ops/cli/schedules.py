"""``pulser-ops schedules ls|apply|pause|resume|rm|preview|fire``: recurring runs.

A schedule enqueues a template's run at each time a cron expression names, in a time zone; the
sweeper's pass fires what is due (``fire`` does the same once, for a setup without a sweeper).
Every check and every change is the control plane's (``45_schedules.sql``): ``apply`` sends the
whole file in one transaction, so a bad schedule anywhere in it writes none, and ``preview``
asks the database, so it reads an expression exactly as firing will.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .. import schedules_file
from ..client import Client
from ..models import Schedule
from . import output, parsing
from .options import Connection, client_for, with_client, with_connection
from .output import as_json, note, out, show
from .runs import confirm

schedules_app = typer.Typer(
    help="Recurring runs: list, apply, pause, resume, remove, preview and fire schedules.",
    no_args_is_help=True,
)


class ListFormat(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Schedule name.")]
CronArg = Annotated[
    str, typer.Argument(metavar="CRON", help='Five fields or @daily, ...: quote it, "0 9 * * 1-5".')
]


def _next(s: Schedule, now: datetime) -> str:
    """When it fires next, for a line: ``next in 4m 10s, 2026-12-01 10:00:00 UTC``."""
    if not s.enabled or s.next_run_at is None:
        return "paused"
    return f"next {output.relative(s.next_run_at, now)}, {output.when(s.next_run_at)} UTC"


def _last_run(s: Schedule, now: datetime) -> str:
    parts = [str(s.last_run_id)[:8]] if s.last_run_id else []
    if s.last_run_at is not None:
        parts.append(output.ago(s.last_run_at, now))
    if s.last_error:
        parts.append("[red]error[/]")
    return " ".join(parts) or "-"


def _next_cells(s: Schedule, now: datetime) -> tuple[str, str]:
    """NEXT and NEXT (UTC): a time already gone is marked, as nothing is firing schedules (no
    sweeper running?)."""
    if not s.enabled or s.next_run_at is None:
        return "-", ""
    if s.next_run_at <= now:
        return f"[yellow]due {output.ago(s.next_run_at, now)}[/]", output.when(s.next_run_at)
    return output.relative(s.next_run_at, now), output.when(s.next_run_at)


def _table(schedules: list[Schedule]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("NAME", "TEMPLATE", "CRON", "TIMEZONE", "NEXT", "NEXT (UTC)", "LAST RUN",
                "STATE", "ERROR"):  # fmt: skip
        table.add_column(col, no_wrap=col != "ERROR")
    now = datetime.now(UTC)
    for s in schedules:
        table.add_row(
            escape(s.name), escape(s.template), escape(s.cron), escape(s.timezone),
            *_next_cells(s, now), _last_run(s, now),
            "[green]enabled[/]" if s.enabled else "[yellow]paused[/]",
            escape(output.one_line(s.last_error)[:60]) if s.last_error else "",
        )  # fmt: skip
    return table


@schedules_app.command("ls")
@with_client
def ls_command(
    client: Client,
    fmt: Annotated[
        ListFormat,
        typer.Option("--format", "-f", help="table, json, or yaml (a file `apply` reads back)."),
    ] = ListFormat.table,
) -> None:
    """Every schedule, by name: when it fires next, its last run, paused or not."""
    schedules = client.schedules.list()
    if fmt is ListFormat.json:
        typer.echo(as_json(schedules))
    elif fmt is ListFormat.yaml:
        typer.echo(schedules_file.dump(schedules), nl=False)
    elif not schedules:
        note("no schedules")
    else:
        show(_table(schedules))


@schedules_app.command("apply")
@with_connection
def apply_command(
    conn: Connection,
    file: Annotated[Path, typer.Argument(help="YAML or JSON: one schedule or a list.")],
) -> None:
    """Create or update schedules from a file: all of them, or none if one is wrong."""
    items = schedules_file.schedules_in(parsing.load_document(file, what="schedule file"), file)
    with client_for(conn) as client:  # the file is read first: a bad one waits for no database
        applied = client.schedules.upsert_many(items)  # one transaction: all or none
    now = datetime.now(UTC)
    for s in applied:
        out.print(f"applied {s.name} ({_next(s, now)})", markup=False)
    note(f"{len(applied)} schedule(s) applied")


@schedules_app.command("pause")
@with_client
def pause_command(client: Client, name: NameArg) -> None:
    """Stop firing a schedule until it is resumed."""
    s = client.schedules.pause(name)
    out.print(f"paused {s.name}", markup=False)


@schedules_app.command("resume")
@with_client
def resume_command(client: Client, name: NameArg) -> None:
    """Fire again, from the next due time after now: times missed while paused are skipped."""
    s = client.schedules.resume(name)
    out.print(f"resumed {s.name} ({_next(s, datetime.now(UTC))})", markup=False)


@schedules_app.command("rm")
@with_client
def rm_command(
    client: Client,
    name: NameArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete a schedule (its runs stay). Asks first unless --yes."""
    found = client.schedules.get(name)  # NotFound before asking, as the delete would say it
    confirm(f"Delete schedule {found.name} ({found.template}, {found.cron!r} "
            f"{found.timezone})?", yes)  # fmt: skip
    client.schedules.delete(found.name)
    out.print(f"deleted {found.name}", markup=False)


@schedules_app.command("preview")
@with_client
def preview_command(
    client: Client,
    cron: CronArg,
    timezone: Annotated[
        str, typer.Option("--timezone", "--tz", help="IANA time zone, e.g. Europe/Paris.")
    ] = "UTC",
    count: Annotated[int, typer.Option("-n", "--count", min=1, max=100, help="How many.")] = 5,
) -> None:
    """The next times a cron expression names: check one before saving it."""
    times = client.schedules.preview(cron, timezone, count)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in (f"LOCAL ({timezone})", "UTC", "IN"):
        table.add_column(escape(col), no_wrap=True)
    now = datetime.now(UTC)
    for t in times:
        table.add_row(escape(t.local_time), output.when(t.due_at), output.relative(t.due_at, now))
    show(table)


@schedules_app.command("fire")
@with_client
def fire_command(
    client: Client,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=1000, help="At most this many schedules.")
    ] = 100,
) -> None:
    """Enqueue the run of every due schedule once, as a sweeper's pass does (service role)."""
    fired = client.schedules.enqueue_due(limit)
    width = max((len(f.schedule) for f in fired), default=0)
    for f in fired:
        what = f"run {f.run_id}" if f.run_id else f"error: {output.one_line(f.error or '?')}"
        out.print(f"{f.schedule:<{width}}  due {output.when(f.due_at)} UTC  {what}", markup=False)
    if not fired:
        note("no schedule is due")
        return
    failed = sum(1 for f in fired if f.run_id is None)
    kept = f", {failed} could not enqueue (the error is kept on the schedule)" if failed else ""
    note(f"fired {len(fired) - failed} schedule(s){kept}")
