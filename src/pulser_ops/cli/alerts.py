"""``pulser-ops alerts``: evaluate the alert rules and notify (a loop; ``--once`` for cron).

``--check`` only reads the rules file and prints the rules in force (defaults filled in);
``--list`` prints the incidents (firing first).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from ..client import Client
from .options import Connection, client_for, with_connection
from .output import ago, out, show

if TYPE_CHECKING:
    from ..alerts.engine import AlertEngine

RULES_HELP = "YAML rules file (env PULSER_OPS_ALERT_RULES); defaults without one."


def _incidents(client: Client) -> None:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("STATUS", "SEVERITY", "RULE", "SUBJECT", "SINCE", "NOTICES", "SUMMARY"):
        table.add_column(col)
    for a in client.alerts.list(limit=200):
        table.add_row(
            "[red]firing[/]" if a.status == "firing" else "[green]resolved[/]",
            a.severity,
            a.rule,
            a.subject,
            ago(a.started_at),
            str(a.notifications),
            a.summary,
        )
    show(table)


@with_connection
def alerts_command(
    conn: Connection,
    rules: Annotated[
        Path | None,
        typer.Option("--rules", envvar="PULSER_OPS_ALERT_RULES", help=RULES_HELP,
                     show_default=False),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Evaluate once and exit (for cron).")
    ] = False,
    interval: Annotated[
        float | None,
        typer.Option(help="Seconds between evaluations (default: the rules' interval, 30).",
                     show_default=False),
    ] = None,
    notify: Annotated[
        list[str] | None,
        typer.Option("--notify", help="Another apprise URL to notify (repeatable).",
                     show_default=False),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Only check the rules file; print the rules.")
    ] = False,
    list_: Annotated[bool, typer.Option("--list", help="Print the incidents and exit.")] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve Prometheus metrics (alert notices, deliveries) on this port.",
                     show_default=False),
    ] = None,
) -> None:
    """Evaluate the alert rules (stuck runs, dead workers, old queues, failure rates) and
    notify Slack, Discord, Teams, email or a JSON webhook, once per incident."""
    from ..alerts.command import engine_for, rules_for
    from ..alerts.notify import redact

    loaded = rules_for(rules, notify or ())  # a bad file is refused before anything connects
    if check:
        shown = loaded.model_dump(mode="json")
        shown["notify"] = [{**t, "url": redact(t["url"])} for t in shown["notify"]]
        out.print(json.dumps(shown, indent=2), markup=False)
        return
    with client_for(conn) as client:
        if list_:
            _incidents(client)
            return
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        code = _loop(engine_for(client, loaded), once, interval, metrics_port)
    raise typer.Exit(code)


def _loop(engine: AlertEngine, once: bool, interval: float | None, metrics_port: int | None
          ) -> int:  # fmt: skip
    from ..alerts.command import run

    server = None
    if metrics_port is not None:
        from ..metrics import serve

        server = serve(metrics_port)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, on_signal)
    try:
        return run(engine, once=once, interval=interval, stop=stop)
    finally:
        if server is not None:
            server.close()
