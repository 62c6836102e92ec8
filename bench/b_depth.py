"""Claim cost against queue depth: claim_runs(limit 1) + complete_run with 1k .. 1M queued.

The queue is built with ``insert ... select generate_series`` and analyzed; then one client
claims and completes runs one at a time through the SDK. A claim must stay an index probe
(``runs_claim_idx`` is partial on ``status = 'queued'``), so depth should not matter.
"""

from __future__ import annotations

import time

import psycopg

import fill
import pulser_ops
from common import Measurement, Target, log, percentile
from ctx import Ctx

PLAN_SQL = """
explain (analyze, buffers, costs off)
select r.id from public.runs r
where r.status = 'queued' and r.lane = 'A' and r.available_at <= now()
order by r.priority desc, r.created_at limit 1 for no key update skip locked
"""


def sample(url: str, n: int) -> tuple[list[float], list[float]]:
    pair: list[float] = []
    claim: list[float] = []
    with pulser_ops.connect(url) as client:
        for i in range(n + 10):
            t0 = time.perf_counter()
            run = client.runs.claim("depth", lanes="A", limit=1)[0]
            t1 = time.perf_counter()
            client.runs.complete(run.id, "depth", run.attempt, "succeeded")
            t2 = time.perf_counter()
            if i >= 10:  # the first calls of a connection plan and prepare
                claim.append((t1 - t0) * 1000)
                pair.append((t2 - t0) * 1000)
    return pair, claim


def plan(url: str) -> str:
    with psycopg.connect(url) as conn:
        return "\n".join(r[0] for r in conn.execute(PLAN_SQL).fetchall())  # type: ignore[arg-type]


def run(ctx: Ctx) -> list[Measurement]:
    s = ctx.sizes
    rows: list[Measurement] = []
    by_depth: dict[int, Measurement] = {}
    for depth in s.depths:
        url = ctx.dbs.fresh("pulser")
        t0 = time.monotonic()
        fill.queued(url, depth)
        log(f"depth {depth:,}: built in {time.monotonic() - t0:.1f} s")
        ctx.settle()
        pair_m = Measurement(
            "claim vs depth", "pulser-ops", f"claim+complete p50 @ {depth:,}", "ms"
        )
        claim_m = Measurement("claim vs depth", "pulser-ops", f"claim alone p50 @ {depth:,}", "ms")
        for _ in range(s.reps):
            pair, claim = sample(url, s.depth_samples)
            pair_m.values.append(percentile(pair, 50))
            claim_m.values.append(percentile(claim, 50))
        (ctx.scratch / f"plan-depth-{depth}.txt").write_text(plan(url))
        by_depth[depth] = pair_m
        rows += [pair_m, claim_m]
        log(f"depth {depth:,}: claim+complete p50 {pair_m.values}")
    lo, hi = min(by_depth), max(by_depth)
    rows.append(
        Measurement(
            "claim vs depth",
            "pulser-ops",
            f"ratio @ {hi:,} / @ {lo:,}",
            "x",
            [a / b for a, b in zip(by_depth[hi].values, by_depth[lo].values, strict=True)],
            Target("<=", 1.5, "<= 1.5x"),
        )
    )
    return rows
