"""``pulser-ops sweep``: the sweeper (:mod:`pulser_ops.sweeper`) under the main command."""

from __future__ import annotations

import typer


def sweep_command(ctx: typer.Context) -> None:
    """Requeue or fail runs whose lease expired, and fire due schedules. Options: see `python -m
    pulser_ops.sweeper --help` (--batch N, --loop, --interval S, --quiet, --no-schedules,
    --db-url, --supabase-url, --supabase-key, --alerts, --alert-rules FILE, --notify URL,
    --metrics-port P)."""
    from pulser_ops.sweeper import main

    raise typer.Exit(main(list(ctx.args)))
