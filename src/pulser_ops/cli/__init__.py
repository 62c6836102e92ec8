"""The ``pulser-ops`` command line.

Each area lives in its own module exposing a ``typer.Typer`` sub-app (or plain
command functions); registering one is a single ``add_typer`` line below, so
other commands (worker, runs, lanes, demo, ...) plug in without touching the
existing ones.
"""

from __future__ import annotations

import io
import os
import sys

import typer

from pulser_ops.cli.alerts import alerts_command
from pulser_ops.cli.db import db_app, init_command
from pulser_ops.cli.demo import demo_command
from pulser_ops.cli.doctor import doctor_command
from pulser_ops.cli.mcp_command import mcp_command
from pulser_ops.cli.metrics import metrics_command
from pulser_ops.cli.operator import register as register_operator_commands
from pulser_ops.cli.output import err, one_line
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



@app.callback()
def _output_never_fails() -> None:
    """Text from the command line can hold what no terminal encoding can (a shell passes an
    undecodable byte as a lone surrogate, and commands echo paths and names back): written
    escaped (``\\udcff``), not failed on."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


app.add_typer(db_app, name="db")
app.add_typer(speckit_app, name="speckit")
app.command("init")(init_command)
register_operator_commands(app)
app.command("worker")(worker_command)
app.command("demo")(demo_command)
app.command("doctor")(doctor_command)
app.command("ui")(ui_command)
app.command("mcp")(mcp_command)
app.command("metrics")(metrics_command)
app.command("alerts")(alerts_command)
app.command("stats")(stats_command)
app.command("sweep", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
    sweep_command
)


def main() -> None:
    """Console-script entry point (``[project.scripts]`` in pyproject.toml).

    Every error a command expects is one ``error:`` line already (``output.reported``); this is
    the net for a bug, so that even then the operator reads one line, not a traceback, and
    ``PULSER_OPS_DEBUG=1`` shows the traceback to whoever fixes it. The tests drive ``app``,
    where such an exception fails them."""
    try:
        app()
    except Exception as e:
        if os.environ.get("PULSER_OPS_DEBUG"):
            raise
        err.print(
            f"error: internal error ({type(e).__name__}: {one_line(str(e))[:300]}); "
            "PULSER_OPS_DEBUG=1 shows the traceback",
            markup=False,
        )
        sys.exit(1)


__all__ = ["app", "main"]
