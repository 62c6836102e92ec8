"""Idle worker footprint: resident memory, and queries per second it sends while idle.

Queries are counted with pg_stat_statements (preloaded in the benchmark cluster; top-level
statements of the worker's database only) and, as a cross-check, commits from
pg_stat_database. Both are read from a connection to another database, so the measuring
does not count itself.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import psycopg

from b_drain import Config, waiting_configs
from common import Measurement, Target, child_env, log, spawn, wait_for
from ctx import Ctx

COUNT = """
select coalesce((select sum(calls) from pg_stat_statements s
                 where s.dbid = d.oid and s.query not ilike '%%pg_stat_statements%%'), 0),
       (select xact_commit from pg_stat_database where datname = %(db)s)
from pg_database d where d.datname = %(db)s
"""


def configs(use_worker: bool) -> list[Config]:
    return waiting_configs(use_worker, "pulser-ops SDK loop (LISTEN + 2 s poll)")


def rss_mb(pid: int) -> float:
    total = 0.0
    pids = [pid] + [
        int(p)
        for p in subprocess.run(
            ["pgrep", "-P", str(pid)], capture_output=True, text=True
        ).stdout.split()
    ]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


def counts(admin_url: str, db: str) -> tuple[int, int]:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("select pg_stat_clear_snapshot()")
        row = conn.execute(COUNT, {"db": db}).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


def run(ctx: Ctx) -> list[Measurement]:
    s = ctx.sizes
    admin = ctx.dbs.server.admin_url
    rows: list[Measurement] = []
    for cfg in configs(ctx.use_worker):
        url = ctx.dbs.fresh(cfg.system)
        db = url.rsplit("/", 1)[1]
        ready = ctx.path(f"idle-{cfg.kind}.ready")
        proc = spawn(
            cfg.command(url, "/dev/null", "idle" if cfg.kind == "loop" else "pickup", str(ready)),
            child_env(),
        )
        mem = Measurement(
            "idle worker",
            cfg.label,
            "RSS",
            "MB",
            target=Target("<", 80.0, "< 80 MB") if cfg.system == "pulser" else None,
        )
        qps = Measurement(
            "idle worker",
            cfg.label,
            f"queries/s ({s.idle_window:.0f} s windows)",
            "q/s",
            target=Target("<", 1.0, "< 1 q/s") if cfg.system == "pulser" else None,
        )
        xps = Measurement("idle worker", cfg.label, "commits/s (pg_stat_database)", "tx/s")
        try:
            wait_for(ready.exists, 60, f"{cfg.label} to start")
            time.sleep(3.0)
            for _ in range(s.reps):
                q0, x0 = counts(admin, db)
                time.sleep(s.idle_window)
                q1, x1 = counts(admin, db)
                qps.values.append((q1 - q0) / s.idle_window)
                xps.values.append((x1 - x0) / s.idle_window)
                mem.values.append(rss_mb(proc.pid))
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log(f"idle {cfg.label}: {mem.values} MB, {qps.values} q/s, {xps.values} tx/s")
        rows += [mem, qps, xps]
    return rows
