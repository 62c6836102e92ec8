"""``pulser-ops enqueue TEMPLATE``: put one run on the queue.

Params come from ``--params-file`` first, then ``--param k=v`` on top (values are JSON when they
parse, so ``--param items=3`` is a number and ``--param name=ops`` a string). The control plane
checks them against the template's schema; nothing is enqueued when anything is wrong.

The params are read before connecting: a mistyped file name is one error line at once, not
after the embedded database has been started (its first start runs initdb).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import parsing
from .options import Connection, client_for, with_connection
from .output import out


@with_connection
def enqueue_command(
    conn: Connection,
    template: Annotated[str, typer.Argument(help="Template name (see `templates ls`).")],
    lane: Annotated[
        str | None, typer.Option("--lane", "-l", help="Lane A-D (default: the template's).")
    ] = None,
    priority: Annotated[int, typer.Option("--priority", "-p", help="-100..100, higher first.")] = 0,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-P", help="key=value (repeatable; JSON values are parsed)."),
    ] = None,
    params_file: Annotated[
        Path | None, typer.Option("--params-file", help="JSON or YAML object of params.")
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option("--idempotency-key", help="Same key, same run: no duplicate.")
    ] = None,
    run_after: Annotated[
        str | None, typer.Option("--run-after", help="ISO time before which it is not claimed.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run as JSON.")] = False,
) -> None:
    """Enqueue a run of TEMPLATE."""
    params = {**parsing.params_file(params_file), **parsing.params(param)}
    lane_id = parsing.lane(lane) if lane is not None else None
    after = parsing.timestamp(run_after, what="--run-after") if run_after else None
    with client_for(conn) as client:
        run = client.runs.create(
            template,
            params,
            lane=lane_id,
            priority=priority,
            run_after=after,
            idempotency_key=idempotency_key,
        )
    if as_json:
        typer.echo(run.model_dump_json(indent=2))
        return
    out.print(
        f"{run.id}  [bold]{run.template}[/]  lane {run.lane}  {run.status.value}"
        + (f"  (after {run.available_at:%Y-%m-%d %H:%M:%S}Z)" if run_after else "")
    )
