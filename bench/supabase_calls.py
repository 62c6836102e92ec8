"""How long each Supabase API call of a large batch takes, against its 8 s statement timeout.

Supabase runs every Data API call under ``statement_timeout = 8s`` (``lock_timeout`` too; 3 s
for ``anon``). The SDK sends large batches in parts of at most ``max_rows`` (1000) rows, which
the row cap requires anyway; this measures whether such a part also stays well under the
timeout: 10,000 runs enqueued, claimed, completed (with events), their leases swept, and
pruned, every HTTP request timed. One more row times the same 10,000-run enqueue sent whole
(no cap), to show what a single call would cost.

Run: ``.venv/bin/python bench/supabase_calls.py [--runs 10000] [--out FILE]``. It goes through the
stand-in (tests/standin: a test fixture that applies Supabase's timeouts, not Supabase itself),
on the benchmark cluster's settings (fsync on) plus logical WAL for its Realtime.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psycopg

from cluster import BenchCluster, start_bench_cluster
from common import REPO, log

sys.path.insert(0, str(REPO))
from tests.standin import StandIn

import pulser_ops
from pulser_ops.db.migrate import push
from pulser_ops.sweeper import sweep_once
from pulser_ops.transport.supabase import SupabaseTransport

SECRET = "bench-supabase-calls-secret-with-32-bytes-or-more"
TEMPLATE = {"name": "bench-timeouts", "max_attempts": 1, "lease_seconds": 300,
            "steps": [{"kind": "python", "handler": "noop"}]}  # fmt: skip


class LogicalCluster(BenchCluster):
    """The benchmark cluster, with the logical WAL the stand-in's Realtime decodes."""

    def _write_config(self) -> None:
        super()._write_config()
        with (self.data_dir / "postgresql.conf").open("a") as fh:
            fh.write("wal_level = logical\nmax_replication_slots = 10\n")


def timed_sends(calls: dict[str, list[float]]) -> Any:
    """Wrap ``SupabaseTransport._send`` so every HTTP request of a call is timed."""
    original = SupabaseTransport._send

    def send(self: SupabaseTransport, req: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self, req)
        finally:
            calls[req.call.fn].append(time.perf_counter() - started)

    SupabaseTransport._send = send  # type: ignore[method-assign]
    return original


def run(n: int, calls: dict[str, list[float]]) -> None:
    cluster = start_bench_cluster(durable=False, kind=LogicalCluster)
    try:
        url = cluster.create_database("supabase_calls")
        push(url)
        with StandIn(url, SECRET, tempfile.mkdtemp()) as sb:
            timed_sends(calls)
            connect = {"supabase_url": sb.url, "supabase_key": sb.service_key}
            runs = [{"template": TEMPLATE["name"], "lane": "D", "params": {"i": i}}
                    for i in range(n)]  # fmt: skip
            sb.app.rest.max_rows = None  # a project with no row cap, for this one call
            with pulser_ops.connect(**connect, max_rows=0) as whole:
                whole.templates.upsert(TEMPLATE)
                log(f"enqueue {n} runs in one call (no cap)")
                whole.runs.create_many(runs)
            sb.app.rest.max_rows = 1000
            calls["enqueue_runs (one call, no cap)"] = calls.pop("enqueue_runs")
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("truncate public.runs cascade")
            with pulser_ops.connect(**connect) as c:
                log(f"enqueue {n} runs")
                c.runs.create_many(runs)
                log(f"claim {n} runs")
                held = c.runs.claim("bench", lanes="D", limit=1000)
                while len(held) < n:
                    held += c.runs.claim("bench", lanes="D", limit=1000)
                log(f"complete {n // 2} runs, 2 events each")
                done, left = held[: n // 2], held[n // 2 :]
                for start in range(0, len(done), 1000):  # complete_runs: at most 1000 a call
                    c.runs.complete_many("bench", [
                        {"run_id": r.id, "attempt": r.attempt, "status": "succeeded",
                         "events": [{"kind": "log", "message": f"step {k}"} for k in range(2)]}
                        for r in done[start : start + 1000]])  # fmt: skip
                log(f"sweep {len(left)} expired leases (--batch 10000)")
                with psycopg.connect(url, autocommit=True) as conn:  # as time would
                    conn.execute("update public.runs set lease_expires_at = now() - interval"
                                 " '1 s' where status = 'running'")  # fmt: skip
                log(f"  {sweep_once(c, batch=10_000).summary()}")
                log(f"prune {n} finished runs (--batch 5000)")
                c.runs.prune(0, batch=5000)
    finally:
        cluster.stop()


def table(calls: dict[str, list[float]]) -> str:
    lines = [
        "| call | requests | median | max | max / 8 s |",
        "|---|---:|---:|---:|---:|",
    ]
    for fn, ts in calls.items():
        lines.append(f"| {fn} | {len(ts)} | {statistics.median(ts):.3f} s | {max(ts):.3f} s |"
                     f" {max(ts) / 8:.0%} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--runs", type=int, default=10_000)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    calls: dict[str, list[float]] = defaultdict(list)
    run(args.runs, calls)
    text = table(calls)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
