"""A minimal pulser-ops worker written against the SDK alone: claim, run a no-op, complete.

Why it exists: it measures what the SDK's claim/complete round trips cost without the
reference worker's threads, heartbeats and event sink, so the two can be compared (and the
drain/pickup benchmarks still run if the reference worker is unavailable).

Modes: ``drain`` exits when a claim comes back empty and dumps its first/last handler times;
``pickup`` waits on LISTEN pulser_ops_wakeup (a poll every ``--poll`` seconds as the fallback:
by default the reference worker's, 2 s) and appends each handler's start time; ``idle`` is
pickup with nothing to do (footprint).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import psycopg

import pulser_ops
from pulser_ops.models import Run

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: gate.py
from gate import ready_then_wait


def handle(run: Run, mode: str, out: object) -> float:
    now = time.time()
    if mode == "pickup":
        out.write(json.dumps({"i": run.params["i"], "t": now}) + "\n")  # type: ignore[attr-defined]
        out.flush()  # type: ignore[attr-defined]
    return now


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("dsn")
    p.add_argument("--mode", default="drain", choices=["drain", "pickup", "idle"])
    p.add_argument("--batch", type=int, default=1, help="max_runs per claim")
    p.add_argument(
        "--complete-many",
        action="store_true",
        help="complete each claimed batch with one runs.complete_many call",
    )
    p.add_argument(
        "--poll", type=float, default=2.0, help="seconds between claims while idle (LISTEN wakes)"
    )
    p.add_argument("--out", default="/dev/null")
    p.add_argument("--ready", default="")
    p.add_argument("--go", default="", help="start only once this file exists (gate.py)")
    a = p.parse_args()
    wid = f"bench-{os.getpid()}"
    client = pulser_ops.connect(a.dsn, prepare=True)
    listen = None
    if a.mode != "drain":
        listen = psycopg.connect(a.dsn, autocommit=True)
        listen.execute("listen pulser_ops_wakeup")
    out = open(a.out, "a")  # noqa: SIM115 - open for the whole process
    ready_then_wait(a.ready, a.go)
    first = 0.0
    last = 0.0
    n = 0
    while True:
        runs = client.runs.claim(wid, lanes="A", limit=a.batch)
        if not runs:
            if listen is None:
                break
            for _ in listen.notifies(timeout=a.poll, stop_after=1):
                pass
            continue
        if a.complete_many:
            done = []
            for run in runs:
                first = first or handle(run, a.mode, out)
                done.append({"run_id": run.id, "attempt": run.attempt, "status": "succeeded"})
            client.runs.complete_many(wid, done)
            last = time.time()
            n += len(runs)
            continue
        for run in runs:
            t = handle(run, a.mode, out)
            first = first or t
            client.runs.complete(run.id, wid, run.attempt, "succeeded")
            last = time.time()
            n += 1
    out.write(json.dumps({"first": first, "last": last, "n": n}) + "\n")
    out.close()
    client.close()


if __name__ == "__main__":
    main()
