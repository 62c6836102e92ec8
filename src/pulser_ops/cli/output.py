"""How the operator's commands talk: rich tables on stdout, one ``error:`` line on stderr.

Why one module: every command reports errors and prints runs the same way, so scripts can rely
on the exit status and on ``--format json|csv`` whatever the command.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NoReturn

import typer
from pydantic import BaseModel
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import PulserOpsError
from ..models import Run

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def counting(label: str) -> Iterator[Callable[[int], None]]:
    """A spinner on stderr with a running count (``label`` may use ``{task.completed}``);
    yields the function that sets the count. Gone when done, silent when stderr is no terminal."""
    with Progress(
        SpinnerColumn(),
        TextColumn(label),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task(label, total=None)
        yield lambda n: progress.update(task, completed=n)


PIPED_WIDTH = 200

STATUS_STYLE = {
    "queued": "cyan",
    "running": "yellow",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "magenta",
}


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


class DataFormat(StrEnum):
    json = "json"
    csv = "csv"


def one_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " ".join(lines) if lines else "failed"


def error_line(exc: PulserOpsError) -> str:
    """The message, plus the control plane's detail when it adds something."""
    message = one_line(exc.message)
    detail = one_line(exc.detail) if exc.detail else ""
    if detail and detail not in message and len(detail) <= 200:
        message = f"{message} ({detail})"
    return message


def show(renderable: RenderableType) -> None:
    """Print to stdout. Piped output gets 200 columns (unless COLUMNS says otherwise), so tables
    written to a file or a pager keep whole ids and paths instead of 80-column ellipses.

    The width is decided now, not when ``out`` was created: a console fixes COLUMNS at birth.
    """
    if out.is_terminal:
        out.print(renderable)
        return
    columns = os.environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() else PIPED_WIDTH
    Console(highlight=False, soft_wrap=True, width=width).print(renderable)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"error: {one_line(message)}", markup=False)
    raise typer.Exit(code)


@contextmanager
def reported() -> Iterator[None]:
    """Any ``PulserOpsError`` becomes one line on stderr and exit status 1 (no traceback)."""
    try:
        yield
    except PulserOpsError as e:
        fail(error_line(e))
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        raise typer.Exit(130) from None


def note(message: str) -> None:
    """Human-facing remarks go to stderr so stdout stays parseable."""
    err.print(message, markup=False)


# ------------------------------------------------------------------------------------------------
# values
# ------------------------------------------------------------------------------------------------


def when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def ago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return ""
    seconds = ((now or datetime.now(UTC)) - value).total_seconds()
    return age(seconds) + " ago"


def age(seconds: float | None) -> str:
    """``42s``, ``5m``, ``3h``, ``2d``: coarse on purpose, for tables."""
    if seconds is None:
        return ""
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def span(seconds: float) -> str:
    """``4m 10s``, ``2h 5m``, ``3d 4h``: the two largest units, for a time someone waits for
    (``age`` rounds to one unit, which is enough for how old a row is)."""
    s = max(0, round(seconds))
    parts = [(s // 86400, "d"), (s % 86400 // 3600, "h"), (s % 3600 // 60, "m"), (s % 60, "s")]
    first = next((i for i, (n, _) in enumerate(parts) if n), len(parts) - 1)
    shown = [f"{n}{unit}" for n, unit in parts[first:first + 2] if n]
    return " ".join(shown) or "0s"


def relative(value: datetime, now: datetime | None = None) -> str:
    """``in 4m 10s`` for a time to come, ``4m 10s ago`` for one gone."""
    seconds = (value - (now or datetime.now(UTC))).total_seconds()
    return f"in {span(seconds)}" if seconds >= 0 else f"{span(-seconds)} ago"


def status_text(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


# ------------------------------------------------------------------------------------------------
# runs
# ------------------------------------------------------------------------------------------------

#: Columns of ``--format csv`` (complex values are JSON-encoded in their cell).
RUN_COLUMNS = (
    "id", "template", "lane", "status", "priority", "attempt", "max_attempts", "params",
    "idempotency_key", "session_id", "worker_id", "error", "error_class", "result",
    "cancel_reason", "sweep_count", "available_at", "created_at", "updated_at", "finished_at",
)  # fmt: skip


def runs_table(runs: Iterable[Run]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("ID", no_wrap=True, min_width=36)  # ids are never shortened
    for col in ("TEMPLATE", "LANE", "STATUS", "PRI", "ATTEMPT", "CREATED", "WORKER", "ERROR"):
        table.add_column(col, no_wrap=col != "ERROR")
    now = datetime.now(UTC)
    for r in runs:
        table.add_row(
            str(r.id),
            r.template,
            r.lane,
            status_text(r.status.value),
            str(r.priority),
            f"{r.attempt}/{r.max_attempts}",
            ago(r.created_at, now),
            escape(r.worker_id or ""),
            escape(one_line(r.error)[:60]) if r.error else "",
        )
    return table


def as_json(items: Iterable[BaseModel]) -> str:
    return json.dumps([i.model_dump(mode="json") for i in items], indent=2)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list | bool):
        return compact_json(value)
    return str(value)


def csv_header() -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(RUN_COLUMNS)
    return buf.getvalue()


def csv_rows(runs: Iterable[Run]) -> Iterator[str]:
    for r in runs:
        data = r.model_dump(mode="json")
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow([_cell(data.get(c)) for c in RUN_COLUMNS])
        yield buf.getvalue()


def print_runs(runs: list[Run], fmt: Format) -> None:
    if fmt is Format.json:
        typer.echo(as_json(runs))
    elif fmt is Format.csv:
        typer.echo(csv_header() + "".join(csv_rows(runs)), nl=False)
    elif not runs:
        note("no runs match")
    else:
        show(runs_table(runs))
