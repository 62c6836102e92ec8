"""``pulser-ops local start|status|stop``: the embedded database under ``--home``.

``status`` never starts anything; ``stop`` shuts the server down cleanly (its data stays, and
the next command that needs it starts it again).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .. import embedded
from .options import embedded_url, with_home
from .output import note, out, show

local_app = typer.Typer(help="The embedded PostgreSQL (used when nothing else is configured).",
                        no_args_is_help=True)  # fmt: skip


@local_app.command("start")
@with_home
def start_command(home: Path) -> None:
    """Create/start the embedded database (and migrate it); print its URL."""
    typer.echo(embedded_url(home))


@local_app.command("status")
@with_home
def status_command(
    home: Path,
    as_json: Annotated[bool, typer.Option("--json", help="As JSON.")] = False,
) -> None:
    """Whether the embedded database exists and runs, and how to reach it."""
    st = embedded.status(home)
    if as_json:
        typer.echo(json.dumps(asdict(st), default=str, indent=2))
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    server = f"PostgreSQL {st.major}" if st.major else "-"
    if st.major and st.bin_dir:
        server += f" ({st.bin_dir})"
    state = "[green]running[/]" if st.running else "stopped" if st.initialized else "not created"
    data = str(st.data_dir)
    if st.relocated:
        data += " (outside the home, which the server's OS user cannot enter)"
    for key, value in (
        ("state", state),
        ("home", str(st.home)),
        ("data", data),
        ("pid", str(st.pid) if st.pid else "-"),
        ("url", st.url if st.running and st.url else "-"),
        ("tcp port", str(st.port) if st.running and st.port else "-"),
        ("server", server),
    ):
        grid.add_row(key, value if key == "state" else escape(value))
    show(grid)


@local_app.command("stop")
@with_home
def stop_command(home: Path) -> None:
    """Stop the embedded database cleanly (its data is kept)."""
    if embedded.stop(home):
        out.print(f"stopped the embedded database in {home}", markup=False)
    else:
        note(f"the embedded database in {home} is not running")
