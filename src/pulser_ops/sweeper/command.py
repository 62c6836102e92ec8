"""``pulser-ops sweep`` (also ``python -m sweeper``): requeue or fail runs whose lease expired.

Once by default, for cron (GitHub Actions, Kubernetes CronJob); ``--loop --interval S`` for an
always-on process, which rides out database restarts and network blips by itself. Exits
non-zero only on a real error: bad configuration, or (without --loop) a failed sweep.

``pulser-ops sweep``, ``python -m pulser_ops.sweeper`` and, from a checkout, ``python -m
sweeper`` (the scheduled job in the repository's ``sweeper/`` folder) all call :func:`main`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType

from pulser_ops import PulserOpsError, connect
from pulser_ops.errors import TransportError
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
    p.add_argument("--quiet", action="store_true", help="print only when something was swept")
    args = p.parse_args(argv)
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
        client = connect(
            args.db_url, supabase_url=args.supabase_url, supabase_key=args.supabase_key
        )
    except PulserOpsError as e:
        print(f"sweeper: {e}", file=sys.stderr)
        return 2
    with client:
        while True:
            try:
                report = sweep_once(client, batch=args.batch)
                if report.total or not args.quiet:
                    print(report.summary(), flush=True)
            except TransportError as e:
                if not args.loop:
                    print(f"sweeper: {e}", file=sys.stderr)
                    return 1
                print(f"sweeper: {e}; retrying in {args.interval:g} s", file=sys.stderr, flush=True)
            except PulserOpsError as e:
                print(f"sweeper: {e}", file=sys.stderr)
                return 1
            if not args.loop or stop.wait(args.interval):
                return 0
