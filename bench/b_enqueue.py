"""Enqueue throughput: one run per call, and 1,000 runs per call, for every system.

Each system uses its own documented API (pulser-ops ``runs.create`` / ``runs.create_many``,
procrastinate ``defer`` / ``batch_defer``, PgQueuer ``enqueue`` with a scalar / a list), with
the connection already open: only the enqueue calls are timed.
"""

from __future__ import annotations

import json
import time

import pulser_ops
from common import BENCH_DIR, PEERS_PY, Measurement, Target, child_env, log, ratio, run_checked
from ctx import Ctx

PEER_SCRIPTS = {"pgqueuer": "pgq.py", "procrastinate": "proc.py"}


def pulser(url: str, mode: str, n: int, batch: int) -> float:
    with pulser_ops.connect(url) as client:
        client.runs.create("noop", {"i": -1})  # connection and statement warm, like the peers
        t0 = time.perf_counter()
        if mode == "single":
            for i in range(n):
                client.runs.create("noop", {"i": i})
        else:
            for start in range(0, n, batch):
                client.runs.create_many(
                    [
                        {"template": "noop", "params": {"i": start + j}}
                        for j in range(min(batch, n - start))
                    ]
                )
        return n / (time.perf_counter() - t0)


def peer(system: str, url: str, mode: str, n: int, batch: int) -> float:
    out = run_checked(
        [
            PEERS_PY,
            str(BENCH_DIR / "peers" / PEER_SCRIPTS[system]),
            "enqueue",
            url,
            "--mode",
            mode,
            "--n",
            str(n),
            "--batch",
            str(batch),
        ],
        env=child_env(),
    )
    res = json.loads(out.strip().splitlines()[-1])
    return float(res["n"]) / float(res["seconds"])


def run(ctx: Ctx) -> list[Measurement]:
    s = ctx.sizes
    rows: dict[tuple[str, str], Measurement] = {}
    for system in ("pulser", "pgqueuer", "procrastinate"):
        name = "pulser-ops" if system == "pulser" else system
        rows[(system, "single")] = Measurement(
            "enqueue", name, f"single, {s.enqueue_single} calls", "runs/s"
        )
        rows[(system, "batch")] = Measurement(
            "enqueue", name, f"batched 1,000 x {s.enqueue_batched // 1000}", "runs/s"
        )
    for rep in range(s.reps):
        for system in ("pulser", "pgqueuer", "procrastinate"):  # interleaved: load hits all
            for mode, n in (("single", s.enqueue_single), ("batch", s.enqueue_batched)):
                url = ctx.dbs.fresh(system)
                ctx.settle()
                rate = (
                    pulser(url, mode, n, 1000)
                    if system == "pulser"
                    else peer(system, url, mode, n, 1000)
                )
                rows[(system, mode)].values.append(rate)
        summary = ", ".join(f"{k[0]}/{k[1]}={m.values[-1]:.0f}" for k, m in rows.items())
        log(f"enqueue rep {rep + 1}: {summary}")
    at_least = Target(">=", 1.0, ">= 1x pgqueuer")
    return [
        *rows.values(),
        *(
            ratio("enqueue", f"pulser-ops / pgqueuer, {mode}", rows[("pulser", mode)],
                  rows[("pgqueuer", mode)], at_least)
            for mode in ("single", "batch")
        ),
    ]  # fmt: skip
