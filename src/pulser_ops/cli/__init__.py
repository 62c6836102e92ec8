"""The ``pulser-ops`` command line.

Each area lives in its own module exposing a ``typer.Typer`` sub-app (or plain
command functions); registering one is a single ``add_typer`` line below, so
other commands (worker, runs, lanes, demo, ...) plug in without touching the
existing ones.
"""

from __future__ import annotations

import typer

from pulser_ops.cli.alerts import alerts_command
from pulser_ops.cli.db import db_app, init_command
from pulser_ops.cli.demo import demo_command
from pulser_ops.cli.doctor import doctor_command
from pulser_ops.cli.metrics import metrics_command
from pulser_ops.cli.operator import register as register_operator_commands
from pulser_ops.cli.speckit import speckit_app
from pulser_ops.cli.stats import stats_command
from pulser_ops.cli.sweep import sweep_command
from pulser_ops.cli.ui import ui_command
from pulser_ops.cli.worker import worker_command

app = typer.Typer(
    name="pulser-ops",
    help="Run-queue control plane for Supabase / PostgreSQL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.add_typer(db_app, name="db")
app.add_typer(speckit_app, name="speckit")
app.command("init")(init_command)
register_operator_commands(app)
app.command("worker")(worker_command)
app.command("demo")(demo_command)
app.command("doctor")(doctor_command)
app.command("ui")(ui_command)
app.command("metrics")(metrics_command)
app.command("alerts")(alerts_command)
app.command("stats")(stats_command)
app.command("sweep", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
    sweep_command
)


def main() -> None:
    """Console-script entry point (``[project.scripts]`` in pyproject.toml)."""
    app()


__all__ = ["app", "main"]
