"""``pulser-ops doctor [--smoke]``: check a deployment and say how to fix what is missing."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pulser_ops.errors import PulserOpsError

STYLE = {"ok": "green", "warn": "yellow", "fail": "red bold"}


def doctor_command(
    smoke: Annotated[
        bool, typer.Option("--smoke", help="Push one real run through the system")
    ] = False,
    db_url: Annotated[str | None, typer.Option("--db-url", help="PostgreSQL URL")] = None,
    supabase_url: Annotated[str | None, typer.Option("--supabase-url")] = None,
    supabase_key: Annotated[str | None, typer.Option("--supabase-key")] = None,
    access_token: Annotated[str | None, typer.Option("--access-token", help="a user's JWT")] = None,
) -> None:
    """Connection, migrations, functions, publication, bucket, keys; --smoke runs one run."""
    from pulser_ops import connect
    from pulser_ops.doctor import run_checks
    from pulser_ops.doctor import smoke as run_smoke

    console = Console() if sys.stdout.isatty() else Console(width=140)
    try:
        client = connect(
            db_url, supabase_url=supabase_url, supabase_key=supabase_key, access_token=access_token
        )
    except PulserOpsError as e:
        print(f"error: {e.code}: {e}", file=sys.stderr)
        raise typer.Exit(1) from None
    with client:
        checks, info = run_checks(client)
        if smoke and info is not None and not any(c.status == "fail" for c in checks):
            with console.status("smoke run..."):
                try:
                    checks += run_smoke(client)
                except PulserOpsError as e:
                    from pulser_ops.doctor import Check

                    checks.append(Check("smoke", "fail", f"{e.code}: {e}"))
    table = Table(title="pulser-ops doctor", title_style="bold")
    for col in ("check", "", "detail", "how to fix"):
        table.add_column(col)
    for c in checks:
        table.add_row(c.name, f"[{STYLE[c.status]}]{c.status}[/]", c.detail, c.fix)
    console.print(table)
    failed = [c.name for c in checks if c.status == "fail"]
    if failed:
        print(f"error: doctor found problems: {', '.join(failed)}", file=sys.stderr)
        raise typer.Exit(1)
