"""``pulser-ops runs ls|show|cancel|run-now|export``: look at runs, stop them, hurry them.

``cancel`` and ``run-now`` check every id before changing anything, so a typo in a list of ids
changes nothing; ``cancel`` (and ``run-now`` over a filter) asks first unless ``--yes`` (and
refuses without a terminal to ask on).
"""

from __future__ import annotations

import sys
from collections import deque
from contextlib import suppress
from pathlib import Path
from typing import Annotated, Any, TextIO
from uuid import UUID

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from ..client import Client
from ..errors import AlreadyTerminal, Conflict, InvalidInput, NotFound
from ..models import Run
from . import output, parsing
from .options import with_client
from .output import DataFormat, Format, out, show

runs_app = typer.Typer(help="List, inspect, cancel and export runs.", no_args_is_help=True)

StatusOpt = Annotated[
    list[str] | None,
    typer.Option("--status", "-s", help="queued/running/succeeded/failed/cancelled (repeatable)."),
]
LaneOpt = Annotated[list[str] | None, typer.Option("--lane", "-l", help="A-D (repeatable).")]
TemplateOpt = Annotated[str | None, typer.Option("--template", "-t", help="Template name.")]
SinceOpt = Annotated[
    str | None, typer.Option("--since", help="Created within (1h, 7d) or after an ISO time.")
]
StuckOpt = Annotated[
    bool, typer.Option("--stuck", help="Only running runs whose lease has expired.")
]


def _filters(
    status: list[str] | None,
    lane: list[str] | None,
    template: str | None,
    since: str | None,
    stuck: bool,
) -> dict[str, Any]:
    return {
        "status": parsing.statuses(status),
        "lane": parsing.lanes(lane),
        "template": template,
        "created_after": parsing.since(since) if since else None,
        "stuck": stuck,
    }


@runs_app.command("ls")
@with_client
def ls_command(
    client: Client,
    status: StatusOpt = None,
    lane: LaneOpt = None,
    template: TemplateOpt = None,
    since: SinceOpt = None,
    stuck: StuckOpt = False,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10000)] = 50,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """Newest runs first."""
    runs = client.runs.list(**_filters(status, lane, template, since, stuck), limit=limit)
    output.print_runs(runs, fmt)


def _export(client: Client, filters: dict[str, Any], fmt: DataFormat, sink: TextIO) -> int:
    count = 0
    with output.counting("Exporting runs: {task.completed}") as counted:
        if fmt is DataFormat.csv:
            sink.write(output.csv_header())
        else:
            sink.write("[")
        for run in client.runs.iter(**filters, limit=500):
            if fmt is DataFormat.csv:
                sink.writelines(output.csv_rows([run]))
            else:
                sink.write(("," if count else "") + "\n  " + run.model_dump_json())
            count += 1
            counted(count)
        if fmt is DataFormat.json:
            sink.write("\n]\n" if count else "]\n")
    return count


@runs_app.command("export")
@with_client
def export_command(
    client: Client,
    status: StatusOpt = None,
    lane: LaneOpt = None,
    template: TemplateOpt = None,
    since: SinceOpt = None,
    stuck: StuckOpt = False,
    fmt: Annotated[DataFormat, typer.Option("--format", "-f")] = DataFormat.json,
    output_file: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Every matching run (paged through, newest first) as JSON or CSV."""
    filters = _filters(status, lane, template, since, stuck)
    if output_file is None:
        _export(client, filters, fmt, sys.stdout)
        return
    if not output_file.name:
        raise InvalidInput(f"--output {output_file}: give a file name, not a directory")
    tmp = output_file.with_name(output_file.name + ".partial")
    try:
        # inside the try: even asking whether a name is a directory can fail (a name too long)
        if output_file.is_dir():
            raise InvalidInput(f"--output {output_file}: give a file name, not a directory")
        with tmp.open("w", encoding="utf-8", newline="") as sink:
            count = _export(client, filters, fmt, sink)
        tmp.replace(output_file)
    except OSError as e:
        raise InvalidInput(f"--output {output_file}: {e.strerror or e}") from None
    finally:
        with suppress(OSError):  # a file that could not be made cannot be removed either
            tmp.unlink(missing_ok=True)
    output.note(f"exported {count} run(s) to {output_file}")


# ------------------------------------------------------------------------------------------------
# show
# ------------------------------------------------------------------------------------------------


def _run_panel(run: Run) -> Panel:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rows: list[tuple[str, str]] = [
        ("status", output.status_text(run.status.value)),
        ("template", escape(run.template)),
        ("lane", run.lane),
        ("priority", str(run.priority)),
        ("attempt", f"{run.attempt} of {run.max_attempts}"),
        ("worker", escape(run.worker_id or "-")),
        ("created", output.when(run.created_at)),
        ("available", output.when(run.available_at)),
        ("lease until", output.when(run.lease_expires_at) or "-"),
        ("finished", output.when(run.finished_at) or "-"),
    ]
    if run.idempotency_key:
        rows.append(("idempotency key", escape(run.idempotency_key)))
    if run.cancel_requested_at:
        why = f": {escape(run.cancel_reason)}" if run.cancel_reason else ""
        rows.append(("cancel", f"requested {output.when(run.cancel_requested_at)}{why}"))
    if run.error:
        rows.append(("error", f"[red]{escape(run.error_class or 'error')}[/]: {escape(run.error)}"))
    rows.append(("params", escape(output.compact_json(run.params))))
    if run.result is not None:
        rows.append(("result", escape(output.compact_json(run.result))))
    for key, value in rows:
        grid.add_row(key, value)
    return Panel(grid, title=f"run {run.id}", title_align="left", expand=False)


def _steps_table(client: Client, run: Run) -> Table:
    table = Table(title="steps", title_justify="left", box=None, header_style="bold")
    for col in ("ATTEMPT", "#", "NAME", "KIND", "STATUS", "EXIT", "STARTED", "ERROR"):
        table.add_column(col)
    for s in client.runs.steps(run.id):
        table.add_row(
            str(s.attempt), str(s.idx), escape(s.name), s.kind, output.status_text(s.status),
            "" if s.exit_code is None else str(s.exit_code), output.when(s.started_at),
            escape(output.one_line(s.error)[:80]) if s.error else "",
        )  # fmt: skip
    return table


def _artifacts_table(client: Client, run: Run) -> Table:
    table = Table(title="artifacts", title_justify="left", box=None, header_style="bold")
    for col in ("NAME", "KIND", "TYPE", "SIZE", "WHERE"):
        table.add_column(col)
    for a in client.artifacts.list(run.id):
        table.add_row(
            escape(a.name), escape(a.kind), escape(a.content_type), f"{a.size_bytes} B",
            "inline" if a.is_inline else escape(f"{a.storage_bucket}/{a.storage_path}"),
        )  # fmt: skip
    return table


def _events_table(client: Client, run: Run, last: int) -> Table:
    tail: deque[Any] = deque(maxlen=last)
    after = 0
    while True:
        page = client.events.list(run.id, after_seq=after, limit=1000)
        tail.extend(page)
        if len(page) < 1000:
            break
        after = page[-1].seq
    table = Table(title=f"last {last} events", title_justify="left", box=None, header_style="bold")
    for col in ("SEQ", "AT", "KIND", "LEVEL", "MESSAGE"):
        table.add_column(col, overflow="fold" if col == "MESSAGE" else "ellipsis")
    for e in tail:
        table.add_row(str(e.seq), output.when(e.at), escape(e.kind), e.level, escape(e.message))
    return table


@runs_app.command("show")
@with_client
def show_command(
    client: Client,
    run_id: Annotated[str, typer.Argument(metavar="ID", help="Run id.")],
    events: Annotated[int, typer.Option("--events", min=0, help="How many last events.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="The run row as JSON.")] = False,
) -> None:
    """A run with its steps, artifacts and last events."""
    run = client.runs.get(run_id)
    if as_json:
        typer.echo(run.model_dump_json(indent=2))
        return
    show(_run_panel(run))
    show(_steps_table(client, run))
    show(_artifacts_table(client, run))
    if events:
        show(_events_table(client, run, events))


# ------------------------------------------------------------------------------------------------
# cancel
# ------------------------------------------------------------------------------------------------


def _run_id(text: str, nothing: str) -> str:
    try:
        return str(UUID(text.strip()))
    except ValueError:
        raise InvalidInput(f"not a run id: {text!r}; {nothing}") from None


def _checked(
    client: Client, run_ids: list[str], nothing: str = "nothing was cancelled"
) -> list[Run]:
    """All runs, or an error naming the unknown / finished ones (before anything changes)."""
    unique = list(dict.fromkeys(_run_id(i, nothing) for i in run_ids))
    found = {str(r.id): r for r in client.runs.get_many(unique)}
    missing = [i for i in unique if i not in found]
    if missing:
        raise NotFound(f"run(s) not found: {', '.join(missing)}; {nothing}")
    runs = [found[i] for i in unique]
    done = [f"{r.id} ({r.status.value})" for r in runs if r.is_terminal]
    if done:
        raise AlreadyTerminal(f"already finished: {', '.join(done)}; {nothing}")
    return runs


def confirm(question: str, yes: bool) -> None:
    """Ask on a terminal; without one, ``--yes`` is required (scripts must say so)."""
    if yes:
        return
    if not sys.stdin.isatty():
        output.fail(f"{question.rstrip('?')}: refusing without a terminal to confirm; add --yes")
    if not typer.confirm(question, default=False, err=True):
        output.fail("aborted; nothing was changed")


@runs_app.command("cancel")
@with_client
def cancel_command(
    client: Client,
    run_ids: Annotated[list[str], typer.Argument(metavar="ID...", help="Run ids.")],
    reason: Annotated[str | None, typer.Option("--reason", "-r")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Cancel runs: queued ones at once, running ones at their worker's next heartbeat."""
    runs = _checked(client, run_ids)
    confirm(f"Cancel {len(runs)} run(s)?", yes)
    for run in runs:
        after = client.runs.cancel(run.id, reason)
        if after.status.value == "cancelled":
            out.print(f"{after.id}  cancelled", markup=False)
        else:
            out.print(
                f"{after.id}  cancel requested (running on {after.worker_id or '?'})", markup=False
            )


@runs_app.command("run-now")
@with_client
def run_now_command(
    client: Client,
    run_ids: Annotated[
        list[str] | None,
        typer.Argument(metavar="[ID...]", help="Run ids (or use --lane/--template)."),
    ] = None,
    lane: LaneOpt = None,
    template: TemplateOpt = None,
    max_runs: Annotated[
        int, typer.Option("--max", min=1, max=10000, help="At most this many.")
    ] = 1000,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (with a filter).")] = False,
) -> None:
    """Make waiting queued runs (run_after, or a retry's backoff) claimable now.

    By ids, or every waiting run of --lane / --template (asks first, shows how many)."""
    if bool(run_ids) == bool(lane or template):
        raise InvalidInput("give run ids, or --lane / --template, not both and not neither")
    if run_ids:
        nothing = "nothing was moved"
        runs = _checked(client, run_ids, nothing)
        busy = [str(r.id) for r in runs if r.status.value == "running"]
        if busy:
            raise Conflict(f"running, so not waiting: {', '.join(busy)}; {nothing}")
        for run in runs:
            after = client.runs.run_now(run.id)
            was = f"was due {output.when(run.available_at)} UTC"
            moved = after.available_at != run.available_at
            out.print(f"{after.id}  {'moved to now (' + was + ')' if moved else 'already due'}",
                      markup=False)  # fmt: skip
        return
    target = {"status": ["queued"], "lanes": parsing.lanes(lane) or [],
              "templates": [template] if template else []}  # fmt: skip
    preview = client.runs.bulk_run_now(filter=target, max_runs=max_runs, dry_run=True)
    if preview.matched == 0:
        out.print("no waiting runs match; nothing was moved", markup=False)
        return
    shown = min(preview.matched, max_runs)
    confirm(f"Move {shown} waiting run(s) to now{' (the newest)' if preview.capped else ''}?", yes)
    done = client.runs.bulk_run_now(filter=target, max_runs=max_runs)
    out.print(f"moved {done.affected} run(s) to now", markup=False)
