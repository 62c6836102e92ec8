"""``pulser-ops worker``: run the reference worker in the foreground.

Why flags default to "not given" (None) rather than to values: settings are merged as
flags > environment > ``--config`` file > defaults in :func:`pulser_ops.worker.load`, and
a flag with a baked-in default would silently beat the environment of a container.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from pulser_ops.errors import PulserOpsError

Opt = typer.Option


def _fail(message: str, code: int = 2) -> typer.Exit:
    """One line on stderr, then the exit to raise."""
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    print(f"error: {first}", file=sys.stderr, flush=True)
    return typer.Exit(code)


def worker_command(
    lanes: Annotated[
        str | None, Opt("--lanes", help="Lanes to claim from, e.g. A,B [env PULSER_OPS_LANES]")
    ] = None,
    concurrency: Annotated[
        str | None, Opt("--concurrency", "-c", help="Runs at once [PULSER_OPS_CONCURRENCY]")
    ] = None,
    burst: Annotated[
        bool | None,
        Opt("--burst/--no-burst", help="Exit once nothing is left to claim and nothing runs."),
    ] = None,
    worker_id: Annotated[
        str | None, Opt("--worker-id", help="Unique id [PULSER_OPS_WORKER_ID]; default host-pid")
    ] = None,
    lease_seconds: Annotated[
        str | None, Opt("--lease-seconds", help="Lease per claim [PULSER_OPS_LEASE_SECONDS]")
    ] = None,
    heartbeat_seconds: Annotated[
        str | None,
        Opt("--heartbeat-seconds", help="Beat interval [PULSER_OPS_HEARTBEAT_SECONDS]"),
    ] = None,
    poll_seconds: Annotated[
        str | None, Opt("--poll-seconds", help="Poll interval [PULSER_OPS_POLL_SECONDS]")
    ] = None,
    shutdown_grace_seconds: Annotated[
        str | None,
        Opt("--shutdown-grace-seconds", help="Drain time [PULSER_OPS_SHUTDOWN_GRACE_SECONDS]"),
    ] = None,
    handlers: Annotated[
        list[str] | None,
        Opt("--handlers", help="module[:attr] with python handlers (repeatable)"),
    ] = None,
    health_port: Annotated[
        str | None,
        Opt("--health-port", help="Serve /healthz and /readyz here [PULSER_OPS_HEALTH_PORT]"),
    ] = None,
    health_host: Annotated[
        str | None,
        Opt("--health-host", help="Address for --health-port [PULSER_OPS_HEALTH_HOST]"),
    ] = None,
    config: Annotated[
        Path | None, Opt("--config", help="TOML or YAML file with worker settings")
    ] = None,
    db_url: Annotated[
        str | None,
        Opt("--db-url", envvar="PULSER_OPS_DATABASE_URL", help="Postgres URL", show_default=False),
    ] = None,
    log_level: Annotated[str, Opt("--log-level", help="debug, info, warning, error")] = "info",
    metrics_port: Annotated[
        int | None,
        Opt("--metrics-port", envvar="PULSER_OPS_METRICS_PORT", show_default=False,
            help="Serve this worker's Prometheus metrics on this port (0: any free port)"),
    ] = None,
    metrics_host: Annotated[
        str, Opt("--metrics-host", help="Address the metrics endpoint binds")
    ] = "0.0.0.0",
) -> None:
    """Claim and execute runs until SIGTERM/SIGINT (twice: stop at once)."""
    from pulser_ops.worker import Worker, WorkerConfigError, load

    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        raise _fail(f"--log-level: expected debug, info, warning or error (got {log_level!r})")
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    flags = {
        "lanes": lanes,
        "concurrency": concurrency,
        "burst": burst,
        "worker_id": worker_id,
        "lease_seconds": lease_seconds,
        "heartbeat_seconds": heartbeat_seconds,
        "poll_seconds": poll_seconds,
        "shutdown_grace_seconds": shutdown_grace_seconds,
        "handlers": handlers or None,
        "health_port": health_port,
        "health_host": health_host,
    }
    observer = None
    if metrics_port is not None:
        from pulser_ops.metrics.worker import PrometheusObserver

        observer = PrometheusObserver()
    try:
        cfg = load(flags, config_file=config)
        worker = Worker(db_url, config=cfg, observer=observer)
    except WorkerConfigError as e:
        raise _fail(str(e)) from None
    server = None
    if metrics_port is not None:
        from pulser_ops.metrics import serve

        try:
            server = serve(metrics_port, metrics_host)
        except PulserOpsError as e:
            raise _fail(str(e)) from None
        logging.getLogger("pulser_ops.worker").info(
            "metrics on http://%s:%d/metrics", metrics_host, server.port
        )
    try:
        code = worker.run()
    except WorkerConfigError as e:  # e.g. --health-port already in use
        raise _fail(str(e)) from None
    except PulserOpsError as e:
        raise _fail(f"{e.code}: {e}", 1) from None
    finally:
        if server is not None:
            server.close()
    raise typer.Exit(code)


worker_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
worker_app.command()(worker_command)

__all__ = ["worker_app", "worker_command"]
