"""Sweeper: time to requeue N runs whose lease expired, with the sweeper's own code.

The runs are inserted as ``running`` with a lease that ended minutes ago (a worker that
died), then ``pulser_ops.sweeper.sweep_once`` (what ``pulser-ops sweep`` runs) sweeps them in its
default batches of 500, and once more with one batch of 10,000.
"""

from __future__ import annotations

import fill
import pulser_ops
from common import Measurement, Target, log
from ctx import Ctx
from pulser_ops.sweeper import sweep_once


def once(ctx: Ctx, batch: int) -> float:
    n = ctx.sizes.sweep_runs
    url = ctx.dbs.fresh("pulser")
    fill.expired(url, n)
    ctx.settle()
    with pulser_ops.connect(url) as client:
        client.runs.list(limit=1)  # connection open: time only the sweep
        report = sweep_once(client, batch=batch)
    if report.requeued != n:
        raise RuntimeError(f"sweep requeued {report.requeued} of {n}: {report.summary()}")
    return report.elapsed_seconds


def run(ctx: Ctx) -> list[Measurement]:
    s = ctx.sizes
    rows = []
    for batch in (500, 10_000):
        m = Measurement(
            "sweeper",
            "pulser-ops",
            f"requeue {s.sweep_runs:,} expired, batch {batch:,}",
            "s",
            target=Target("<", 1.0, "< 1 s"),
        )
        for _ in range(s.reps):
            m.values.append(once(ctx, batch))
        log(f"sweep batch {batch}: {m.values}")
        rows.append(m)
    return rows
