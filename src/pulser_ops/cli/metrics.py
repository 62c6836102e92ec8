"""``pulser-ops metrics``: the fleet's Prometheus exporter.

Every scrape reads the fleet with one ``fleet_metrics`` call (queue depth and age per lane,
running and stuck runs, finished runs, workers and their slots) under a statement_timeout, after
which the answer comes from the planner's estimates. Process metrics of the exporter itself
(``process_*``, ``python_*``) come along. Runs in the foreground until SIGTERM/SIGINT.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Annotated

import typer

from ..client import Client
from .options import with_client
from .output import note

DEFAULT_PORT = 9741


@with_client
def metrics_command(
    client: Client,
    port: Annotated[int, typer.Option(help="Port to serve /metrics on (0: any free port).")] = (
        DEFAULT_PORT
    ),
    host: Annotated[str, typer.Option(help="Address to bind.")] = "0.0.0.0",
    exact_limit: Annotated[
        int, typer.Option(help="Queued runs per lane counted exactly; estimates above.")
    ] = 10000,
    timeout_ms: Annotated[
        int, typer.Option(help="statement_timeout of a scrape's query; estimates after it.")
    ] = 2000,
) -> None:
    """Serve the fleet's metrics for Prometheus (read from the database at scrape time)."""
    from prometheus_client import REGISTRY

    from ..metrics import serve
    from ..metrics.fleet import FleetCollector

    collector = FleetCollector(
        lambda: client.monitoring.fleet(exact_limit=exact_limit, timeout_ms=timeout_ms)
    )
    REGISTRY.register(collector)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    server = serve(port, host)
    try:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        print(f"pulser-ops metrics for {client.description or 'the control plane'}", flush=True)
        print(f"  http://{shown}:{server.port}/metrics", flush=True)
        stop.wait()
        note("stopped")
    finally:
        server.close()
        REGISTRY.unregister(collector)
        for s, h in previous.items():
            signal.signal(s, h)
