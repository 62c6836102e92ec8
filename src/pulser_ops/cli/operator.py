"""The operator's commands, registered on the main app in one call.

Why one ``register`` function: ``cli/__init__.py`` is shared by several areas, so each area adds
itself with a single line there.
"""

from __future__ import annotations

import typer

from .enqueue import enqueue_command
from .lanes import lanes_app
from .local import local_app
from .prune import prune_command
from .runs import runs_app
from .schedules import schedules_app
from .tail import tail_command
from .templates import templates_app


def register(app: typer.Typer) -> None:
    app.command("enqueue")(enqueue_command)
    app.add_typer(runs_app, name="runs")
    app.command("tail")(tail_command)
    app.add_typer(templates_app, name="templates")
    app.add_typer(schedules_app, name="schedules")
    app.add_typer(lanes_app, name="lanes")
    app.command("prune")(prune_command)
    app.add_typer(local_app, name="local")
