"""Pickup latency: one idle worker, runs enqueued GAP apart, enqueue commit -> handler start.

The enqueuer writes ``time.time()`` right after its enqueue call returns (the commit has
happened); the handler writes ``time.time()`` as its first statement. Both run on this
machine, so the clocks agree. A handler can start a little before the enqueuer's call has
returned (the wakeup NOTIFY leaves at commit): those latencies are small or negative and are
kept as measured.
"""

from __future__ import annotations

import json
import subprocess
import time

import psycopg

import pulser_ops
from b_drain import Config, waiting_configs
from common import (
    BENCH_DIR,
    PEERS_PY,
    Measurement,
    Target,
    child_env,
    log,
    percentile,
    read_json_lines,
    spawn,
    wait_for,
)
from ctx import Ctx


def configs(use_worker: bool) -> list[Config]:
    return waiting_configs(use_worker, "pulser-ops SDK loop (LISTEN)")


def listening(url: str) -> bool:
    """Whether some backend of this database has LISTEN as its latest statement."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "select count(*) from pg_stat_activity where datname = current_database()"
            " and query ilike 'listen%%' and pid <> pg_backend_pid()"
        ).fetchone()
        return bool(row and row[0])


def enqueue_paced(cfg: Config, url: str, n: int, gap: float, out: str) -> None:
    if cfg.system == "pulser":
        with pulser_ops.connect(url) as client, open(out, "a") as fh:
            client.runs.list(limit=1)  # warm the pool
            for i in range(n):
                client.runs.create("noop", {"i": i})
                fh.write(json.dumps({"i": i, "t": time.time()}) + "\n")
                time.sleep(gap)
        return
    script = "pgq.py" if cfg.system == "pgqueuer" else "proc.py"
    subprocess.run(
        [
            PEERS_PY,
            str(BENCH_DIR / "peers" / script),
            "paced",
            url,
            "--n",
            str(n),
            "--gap",
            str(gap),
            "--out",
            out,
        ],
        env=child_env(),
        check=True,
        capture_output=True,
    )


def once(ctx: Ctx, cfg: Config) -> list[float]:
    s = ctx.sizes
    url = ctx.dbs.fresh(cfg.system)
    handled = ctx.path(f"pickup-{cfg.kind}-handled.jsonl")
    sent = ctx.path(f"pickup-{cfg.kind}-sent.jsonl")
    ready = ctx.path(f"pickup-{cfg.kind}.ready")
    proc = spawn(cfg.command(url, str(handled), "pickup", str(ready)), child_env())
    try:
        wait_for(ready.exists, 60, f"{cfg.label} to start")
        if cfg.system == "pulser":  # its LISTEN connection is up: wake-ups will not be missed
            wait_for(lambda: listening(url), 60, f"{cfg.label} to LISTEN")
        time.sleep(1.5)  # let it finish its first (empty) poll and sit idle
        enqueue_paced(cfg, url, s.pickup_runs, s.pickup_gap, str(sent))
        wait_for(
            lambda: len(read_json_lines(handled)) >= s.pickup_runs,
            60,
            f"{cfg.label} to handle {s.pickup_runs} runs",
        )
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    t_sent = {int(r["i"]): r["t"] for r in read_json_lines(sent)}
    t_start = {int(r["i"]): r["t"] for r in read_json_lines(handled) if "i" in r}
    return [(t_start[i] - t_sent[i]) * 1000 for i in t_sent if i in t_start]


def run(ctx: Ctx) -> list[Measurement]:
    s = ctx.sizes
    cfgs = configs(ctx.use_worker)
    rows: dict[tuple[Config, int], Measurement] = {}
    for c in cfgs:
        for q, target in (
            (50, Target("<=", 3.0, "<= 3 ms")),
            (95, None),
            (99, Target("<=", 10.0, "<= 10 ms")),
        ):
            rows[(c, q)] = Measurement(
                "pickup latency",
                c.label,
                f"p{q}, {s.pickup_runs} runs {s.pickup_gap * 1000:.0f} ms apart",
                "ms",
                target=target if c.system == "pulser" else None,
            )
    for rep in range(s.reps):
        for c in cfgs:
            lat = once(ctx, c)
            for q in (50, 95, 99):
                rows[(c, q)].values.append(percentile(lat, q))
        parts = ", ".join(f"{c.label} p50={rows[(c, 50)].values[-1]:.2f}ms" for c in cfgs)
        log(f"pickup rep {rep + 1}: {parts}")
    return list(rows.values())
