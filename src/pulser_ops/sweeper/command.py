"""``pulser-ops sweep`` (also ``python -m sweeper``): requeue expired runs, fire due schedules.

A run whose lease expired is requeued, or failed after its last attempt. Then the run of every
due schedule is enqueued (``--no-schedules`` leaves that to something else, e.g. the pg_cron
job); a schedule whose run cannot be enqueued is printed and kept on the schedule
(``last_error``), never fatal.

Once by default, for cron (GitHub Actions, Kubernetes CronJob); ``--loop --interval S`` for an
always-on process, which rides out database restarts and network blips by itself. Exits
non-zero only on a real error: bad configuration, or (without --loop) a failed sweep.

``--alerts`` (or ``--alert-rules FILE``) also evaluates the alert rules after sweeping and
notifies (see :mod:`pulser_ops.alerts`); ``--metrics-port P`` serves the sweeper's counters
(``pulser_sweeper_requeued_total{lane}``, ...) for Prometheus.

``pulser-ops sweep``, ``python -m pulser_ops.sweeper`` and, from a checkout, ``python -m
sweeper`` (the scheduled job in the repository's ``sweeper/`` folder) all call :func:`main`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from types import FrameType

from pulser_ops import Client, PulserOpsError, connect
from pulser_ops.alerts.command import (
    DELIVERY_GRACE_SECONDS,
    engine_for,
    evaluate_safely,
    rules_for,
)
from pulser_ops.alerts.engine import AlertEngine
from pulser_ops.alerts.rules import Rules
from pulser_ops.errors import TransportError
from pulser_ops.metrics.process import SweeperMetrics
from pulser_ops.metrics.serve import serve
from pulser_ops.sweeper.sweep import sweep_once


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="sweeper", description=__doc__.splitlines()[0] if __doc__ else ""
    )
    p.add_argument("--db-url", default=None, help="PostgreSQL URL (else PULSER_OPS_DATABASE_URL)")
    p.add_argument("--supabase-url", default=None, help="Supabase URL (else SUPABASE_URL)")
    p.add_argument(
        "--supabase-key", default=None, help="service role key (else SUPABASE_SERVICE_ROLE_KEY)"
    )
    p.add_argument(
        "--batch", type=int, default=int(os.environ.get("PULSER_OPS_SWEEP_BATCH", "500"))
    )
    p.add_argument("--loop", action="store_true", help="keep sweeping every --interval seconds")
    p.add_argument(
        "--interval", type=float, default=float(os.environ.get("PULSER_OPS_SWEEP_INTERVAL", "15"))
    )
    p.add_argument(
        "--quiet", action="store_true", help="print only when something was swept or fired"
    )
    p.add_argument(
        "--no-schedules", dest="schedules", action="store_false",
        help="do not fire due schedules (when pg_cron or another sweeper fires them)",
    )
    p.add_argument(
        "--metrics-port", type=int, default=None,
        help="serve Prometheus metrics (pulser_sweeper_*_total{lane}) on this port (with --loop)",
    )
    p.add_argument("--metrics-host", default="0.0.0.0", help="address the metrics endpoint binds")
    p.add_argument(
        "--alerts", action="store_true",
        help="evaluate the alert rules after sweeping (every rules interval) and notify",
    )
    p.add_argument(
        "--alert-rules", type=Path, default=os.environ.get("PULSER_OPS_ALERT_RULES") or None,
        help="YAML alert rules (implies --alerts; env PULSER_OPS_ALERT_RULES)",
    )
    p.add_argument(
        "--notify", action="append", default=[],
        help="apprise URL to notify of alerts (repeatable; implies --alerts)",
    )
    args = p.parse_args(argv)
    args.alerts = args.alerts or args.alert_rules is not None or bool(args.notify)
    if not 1 <= args.batch <= 10000:
        p.error("--batch must be between 1 and 10000")
    if args.interval <= 0:
        p.error("--interval must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        rules = rules_for(args.alert_rules, args.notify) if args.alerts else None
    except PulserOpsError as e:
        print(f"sweeper: {e}", file=sys.stderr)
        return 2
    try:
        client = connect(
            args.db_url, supabase_url=args.supabase_url, supabase_key=args.supabase_key
        )
    except PulserOpsError as e:
        print(f"sweeper: {e}", file=sys.stderr)
        return 2
    with client, ExitStack() as stack:
        try:
            metrics, alerts = _extras(args, client, rules, stack)
        except PulserOpsError as e:
            print(f"sweeper: {e}", file=sys.stderr)
            return 2
        last_alerts = float("-inf")
        while True:
            try:
                report = sweep_once(
                    client, batch=args.batch, metrics=metrics, schedules=args.schedules
                )
                if report.total or report.fired or not args.quiet:
                    print(report.summary(), flush=True)
                for line in report.schedule_error_lines():
                    print(f"sweeper: {line}", file=sys.stderr, flush=True)
            except TransportError as e:
                if metrics is not None:
                    metrics.sweep_failed()
                if not args.loop:
                    print(f"sweeper: {e}", file=sys.stderr)
                    return 1
                print(f"sweeper: {e}; retrying in {args.interval:g} s", file=sys.stderr, flush=True)
            except PulserOpsError as e:
                print(f"sweeper: {e}", file=sys.stderr)
                return 1
            # Alerts after the sweep, at the rules' own pace; their notices go out on the
            # notifier's threads, so a slow or failing webhook never delays the next sweep.
            if alerts is not None and time.monotonic() - last_alerts >= alerts.rules.interval:
                last_alerts = time.monotonic()
                try:
                    evaluate_safely(alerts)
                except PulserOpsError as e:
                    print(f"sweeper: alerts: {e}", file=sys.stderr, flush=True)
            if not args.loop or stop.wait(args.interval):
                return 0


def _extras(
    args: argparse.Namespace, client: Client, rules: Rules | None, stack: ExitStack
) -> tuple[SweeperMetrics | None, AlertEngine | None]:
    """The metrics endpoint and the alert engine the flags ask for (closed by ``stack``)."""
    metrics = None
    if args.metrics_port is not None:
        metrics = SweeperMetrics()
        server = serve(args.metrics_port, args.metrics_host)
        stack.callback(server.close)
    alerts = None
    if rules is not None:
        alerts = engine_for(client, rules)
        grace = DELIVERY_GRACE_SECONDS if not args.loop else 10.0
        stack.callback(alerts.close, grace)
    return metrics, alerts
