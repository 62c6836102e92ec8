"""Realistic drain: runs with a real step, beside the no-op drain (issue 18, item 4).

N queued runs of a one-step template, drained by P reference worker processes (concurrency 4
each, burst mode): a ``shell`` step running ``true``, and an ``http`` step GETting a local
server (workers/http_ok.py). Ops runs have real steps, and what users want to know is what a
step costs on top of its own work, so the same work also runs without any queue
(workers/bare_steps.py: ``true`` started, or the server asked, N times by P processes of 4 at
once, as the worker's executors do it).

Rates: the drain's from the database (N / (last finished_at - first claimed_at)): there is no
handler to read a clock in; the bare work's from its own clock, after the same start gate. The
third row per kind is what the queue and the worker add per run, in wall-clock milliseconds on
this machine at this parallelism: 1000 / drain rate - 1000 / bare rate.
"""

from __future__ import annotations

import json
import subprocess

import psycopg

import fill
from common import (
    BENCH_DIR,
    PULSER_PY,
    Measurement,
    child_env,
    log,
)
from ctx import Ctx

CONCURRENCY = 4


def templates(port: int) -> list[dict[str, object]]:
    return [
        {"name": "sh-true", "steps": [{"kind": "shell", "name": "true", "command": ["true"]}]},
        {"name": "http-get", "steps": [
            {"kind": "http", "name": "get", "url": f"http://127.0.0.1:{port}/"}]},
    ]  # fmt: skip


KINDS = {"shell": "sh-true", "http": "http-get"}


def drain(ctx: Ctx, kind: str, port: int) -> float:
    s = ctx.sizes
    url = ctx.dbs.fresh("pulser")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select public.upsert_templates(%s::jsonb)", [json.dumps(templates(port))])
    fill.queued(url, s.steps_runs, KINDS[kind])
    ctx.settle()
    cmd = [PULSER_PY, str(BENCH_DIR / "workers" / "pulser_worker.py"), url, "--mode", "drain",
           "--concurrency", str(CONCURRENCY)]  # fmt: skip
    ctx.run_gated(f"steps-{kind}", s.drain_procs, lambda r, go: [*cmd, "--ready", r, "--go", go])
    with psycopg.connect(url) as conn:
        done, seconds = conn.execute(
            "select count(*) filter (where status = 'succeeded'),"
            " extract(epoch from max(finished_at) - min(claimed_at))::float8 from public.runs"
        ).fetchone()  # type: ignore[misc]
    if done != s.steps_runs:
        raise RuntimeError(f"{kind} drain: {done} of {s.steps_runs} runs succeeded")
    return float(done) / float(seconds)


def bare(ctx: Ctx, kind: str, port: int) -> float:
    s = ctx.sizes
    out = ctx.path(f"bare-{kind}.jsonl")
    share = s.steps_runs // s.drain_procs
    cmd = [PULSER_PY, str(BENCH_DIR / "workers" / "bare_steps.py"), kind,
           "--url", f"http://127.0.0.1:{port}/", "--count", str(share),
           "--concurrency", str(CONCURRENCY), "--out", str(out)]  # fmt: skip
    ctx.run_gated(f"bare-{kind}", s.drain_procs, lambda r, go: [*cmd, "--ready", r, "--go", go])
    parts = [json.loads(line) for line in out.read_text().splitlines()]
    n = sum(int(p["n"]) for p in parts)
    return n / (max(p["last"] for p in parts) - min(p["first"] for p in parts))


def run(ctx: Ctx) -> list[Measurement]:
    s = ctx.sizes
    if not ctx.use_worker:
        log("steps: needs the reference worker; skipped")
        return []
    server = subprocess.Popen(
        [PULSER_PY, str(BENCH_DIR / "workers" / "http_ok.py")],
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        what = f"{s.steps_runs:,} runs, {s.drain_procs} processes x {CONCURRENCY}"
        rows: list[Measurement] = []
        for kind, label in (("shell", "shell step `true`"), ("http", "http step GET (local)")):
            worker = Measurement("steps", f"pulser-ops worker, {label}", what, "runs/s")
            work = Measurement("steps", f"the same work, no queue, {label}", what, "runs/s")
            for rep in range(s.reps):
                worker.values.append(drain(ctx, kind, port))
                work.values.append(bare(ctx, kind, port))
                log(f"steps {kind} rep {rep + 1}: worker {worker.values[-1]:.0f}/s,"
                    f" bare {work.values[-1]:.0f}/s")  # fmt: skip
            added = Measurement(
                "steps",
                f"added per run by queue + worker, {label}",
                "1000/worker - 1000/bare (wall clock)",
                "ms",
                [1000 / a - 1000 / b for a, b in zip(worker.values, work.values, strict=True)],
            )
            rows += [worker, work, added]
        return rows
    finally:
        server.terminate()
        server.wait()
