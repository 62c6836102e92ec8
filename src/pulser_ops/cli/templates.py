"""``pulser-ops templates ls|show|apply``: the run templates.

``apply`` validates the whole file before writing anything (``templates_file``: the same checks
the control room's import makes, the steps with the worker's parser; the control plane
validates each template again), so a malformed file changes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

from .. import templates_file
from ..client import Client
from . import parsing
from .options import Connection, client_for, with_client, with_connection
from .output import Format, as_json, note, out, show

templates_app = typer.Typer(help="List, show and apply run templates.", no_args_is_help=True)


@templates_app.command("ls")
@with_client
def ls_command(
    client: Client,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="table or json.")] = Format.table,
) -> None:
    """Every template."""
    templates = client.templates.list()
    if fmt is not Format.table:
        typer.echo(as_json(templates))
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("NAME", "LANE", "ATTEMPTS", "STEPS", "DESCRIPTION"):
        table.add_column(col, no_wrap=col != "DESCRIPTION")
    for t in templates:
        kinds = ",".join(str(s.get("kind", "?")) for s in t.steps)
        table.add_row(
            t.name, t.default_lane, str(t.max_attempts), escape(kinds), escape(t.description)
        )
    show(table)


@templates_app.command("show")
@with_client
def show_command(
    client: Client,
    name: Annotated[str, typer.Argument(help="Template name.")],
    as_json_flag: Annotated[bool, typer.Option("--json", help="As JSON.")] = False,
) -> None:
    """One template: settings, params schema and steps."""
    t = client.templates.get(name)
    if as_json_flag:
        typer.echo(t.model_dump_json(indent=2))
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    timeout = f"{t.timeout_seconds}s" if t.timeout_seconds else "none"
    for key, value in (
        ("description", escape(t.description or "-")),
        ("default lane", t.default_lane),
        ("max attempts", str(t.max_attempts)),
        ("retry backoff", f"{t.retry_backoff_seconds:g}s, cap {t.retry_backoff_max_seconds:g}s,"
                          f" jitter {t.retry_jitter:g}"),
        ("non-retryable", escape(", ".join(t.non_retryable_errors) or "-")),
        ("lease", f"{t.lease_seconds}s"),
        ("timeout", timeout),
    ):  # fmt: skip
        grid.add_row(key, value)
    show(Panel(grid, title=f"template {t.name}", title_align="left"))
    show(Panel(Syntax(json.dumps(t.params_schema, indent=2), "json"), title="params schema",
                    title_align="left"))  # fmt: skip
    steps = [Syntax(json.dumps(s, indent=2), "json") for s in t.steps]
    show(Panel(Group(*steps), title=f"{len(steps)} step(s)", title_align="left"))


def _validated(path: Path) -> list[dict[str, Any]]:
    return templates_file.templates_in(parsing.load_document(path, what="template file"), path)


@templates_app.command("apply")
@with_connection
def apply_command(
    conn: Connection,
    file: Annotated[Path, typer.Argument(help="YAML or JSON: one template or a list.")],
) -> None:
    """Create or update templates from a file."""
    items = _validated(file)  # before connecting: a bad file must not wait for a database
    with client_for(conn) as client:
        applied = client.templates.upsert_many(items)  # one transaction: all or none
    for t in applied:
        out.print(f"applied {t.name}", markup=False)
    note(f"{len(items)} template(s) applied")
