"""``pulser-ops demo``: see the whole system work, on an embedded PostgreSQL by default."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pulser_ops.errors import PulserOpsError


def demo_command(
    home: Annotated[
        Path,
        typer.Option("--home", envvar="PULSER_OPS_HOME", help="Where the embedded database lives"),
    ] = Path(".pulser-ops"),
    db_url: Annotated[
        str | None,
        typer.Option(
            "--db-url", help="Use this database instead of the embedded one (it must be migrated)"
        ),
    ] = None,
) -> None:
    """Enqueue a mix of runs, start two workers and the sweeper, kill one, watch it recover."""
    from pulser_ops.demo import run_demo

    console = Console()
    if not console.is_terminal:
        console = Console(width=140)  # logs and CI: keep the summary table readable
    try:
        code = run_demo(db_url=db_url, home=home, console=console)
    except PulserOpsError as e:
        print(f"error: {e.code}: {e}", file=sys.stderr)
        raise typer.Exit(1) from None
    raise typer.Exit(code)
