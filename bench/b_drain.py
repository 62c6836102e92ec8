"""Drain: N queued no-op runs, P worker processes, runs per second until the queue is empty.

Rate = runs / (last handler end - first handler start) across all processes: the same clock
for every system, read inside the handler, so start-up and shutdown of the processes are not
counted. Every process dumps its own first/last/count; the total must equal N, and the
database must agree that every run finished.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import psycopg

import fill
from common import (
    BENCH_DIR,
    PEERS_PY,
    PULSER_PY,
    Measurement,
    Target,
    log,
    ratio,
)
from ctx import Ctx
from setup_env import EXPERIMENT, experiment_name


@dataclass(frozen=True)
class Config:
    system: str  # database template
    label: str
    batch: int
    kind: str  # "loop" | "loop_many" | "worker" | "pgqueuer" | "procrastinate"

    def command(self, url: str, out: str, mode: str, ready: str = "", go: str = "") -> list[str]:
        extra = (["--ready", ready] if ready else []) + (["--go", go] if go else [])
        if self.kind in ("loop", "loop_many"):
            many = ["--complete-many"] if self.kind == "loop_many" else []
            return [
                PULSER_PY,
                str(BENCH_DIR / "workers" / "pulser_loop.py"),
                url,
                "--mode",
                mode,
                "--batch",
                str(self.batch),
                "--out",
                out,
                *many,
                *extra,
            ]
        if self.kind == "worker":
            return [
                PULSER_PY,
                str(BENCH_DIR / "workers" / "pulser_worker.py"),
                url,
                "--mode",
                mode,
                "--concurrency",
                str(self.batch),
                "--out",
                out,
                *extra,
            ]
        script = "pgq.py" if self.kind == "pgqueuer" else "proc.py"
        return [
            PEERS_PY,
            str(BENCH_DIR / "peers" / script),
            "worker",
            url,
            "--mode",
            mode,
            "--batch",
            str(self.batch),
            "--out",
            out,
            *extra,
        ]


def configs(use_worker: bool, experiments: tuple[str, ...] = ()) -> list[Config]:
    out = [
        Config("pulser", "pulser-ops SDK loop, claim 1", 1, "loop"),
        Config("pulser", "pulser-ops SDK loop, claim 10", 10, "loop"),
        Config("pulser", "pulser-ops SDK loop, claim 100 + complete_many", 100, "loop_many"),
    ]
    if use_worker:
        out += [
            Config("pulser", "pulser-ops worker, concurrency 4", 4, "worker"),
            Config("pulser", "pulser-ops worker, concurrency 10", 10, "worker"),
        ]
        # SQL not shipped (--experiment): the same worker on the schema with the file applied,
        # in the same repetitions, so its ratio to the peers is measured under the same load.
        out += [
            Config(system, f"pulser-ops worker, concurrency 10, experiment {experiment_name(system)}",
                   10, "worker")
            for system in experiments
        ]  # fmt: skip
    out += [
        Config("pgqueuer", "pgqueuer (batch_size 10)", 10, "pgqueuer"),
        # Not PgQueuer's default: the same batch size as our best configuration, so the table
        # also says how we compare when both sides batch alike.
        Config("pgqueuer", "pgqueuer (batch_size 100)", 100, "pgqueuer"),
        Config("procrastinate", "procrastinate (concurrency 1)", 1, "procrastinate"),
    ]
    return out


def waiting_configs(use_worker: bool, loop_label: str) -> list[Config]:
    """Each system as one waiting worker with its defaults (pickup latency, idle footprint)."""
    out = [Config("pulser", loop_label, 1, "loop")]
    if use_worker:
        out.append(Config("pulser", "pulser-ops worker", 4, "worker"))
    out += [
        Config("pgqueuer", "pgqueuer", 10, "pgqueuer"),
        Config("procrastinate", "procrastinate", 1, "procrastinate"),
    ]
    return out


def fill_queue(ctx: Ctx, cfg: Config, url: str, n: int) -> None:
    if cfg.system.startswith("pulser"):
        fill.queued(url, n)
        return
    from b_enqueue import peer

    peer(cfg.system, url, "batch", n, 1000)


def remaining(cfg: Config, url: str) -> int:
    q = {
        "pulser": "select count(*) from public.runs where status <> 'succeeded'",
        "pgqueuer": "select count(*) from pgqueuer",
        "procrastinate": "select count(*) from procrastinate_jobs where status <> 'succeeded'",
    }
    with psycopg.connect(url) as conn:
        return int(conn.execute(q[cfg.system.split(":")[0]]).fetchone()[0])  # type: ignore[index]


def once(ctx: Ctx, cfg: Config) -> float:
    s = ctx.sizes
    url = ctx.dbs.fresh(cfg.system)
    fill_queue(ctx, cfg, url, s.drain_runs)
    ctx.settle()
    out = ctx.path(f"drain-{cfg.kind}.jsonl")
    # the gate: every process connected before any of them claims
    ctx.run_gated(
        f"drain-{cfg.kind}",
        s.drain_procs,
        lambda ready, go: cfg.command(url, str(out), "drain", ready, go),
    )
    parts = [json.loads(line) for line in out.read_text().splitlines()]
    n = sum(int(p["n"]) for p in parts)
    if n != s.drain_runs or remaining(cfg, url) != 0:
        raise RuntimeError(
            f"{cfg.label}: handled {n} of {s.drain_runs}, "
            f"{remaining(cfg, url)} left in the database"
        )
    first = min(p["first"] for p in parts if p["n"])
    last = max(p["last"] for p in parts)
    return n / (last - first)


def run(ctx: Ctx) -> list[Measurement]:
    s = ctx.sizes
    cfgs = configs(ctx.use_worker, tuple(ctx.dbs.experiments_built()))
    rows = {
        c: Measurement(
            "drain", c.label, f"{s.drain_runs:,} no-op runs, {s.drain_procs} processes", "runs/s"
        )
        for c in cfgs
    }
    for rep in range(s.reps):
        for c in cfgs:
            rows[c].values.append(once(ctx, c))
        summary = ", ".join(f"{c.label}={m.values[-1]:.0f}" for c, m in rows.items())
        log(f"drain rep {rep + 1}: {summary}")
    return list(rows.values()) + ratios(rows)


def ratios(rows: dict[Config, Measurement]) -> list[Measurement]:
    """Best pulser-ops configuration against each peer configuration, repetition by repetition.

    The targets apply to each peer's defaults (its first configuration); the other rows are
    for information.
    """
    ours = [m for c, m in rows.items() if c.system == "pulser"]
    best = max(ours, key=lambda m: m.median)
    out = []
    # What users deploy: the reference worker against PgQueuer's default worker (issue 18),
    # each with 10 jobs in flight per process (PgQueuer's default batch_size: it runs a whole
    # batch at once).
    worker = next(
        (
            m
            for c, m in rows.items()
            if c.system == "pulser" and c.kind == "worker" and c.batch == 10
        ),
        None,
    )
    pgq = next((m for c, m in rows.items() if c.system == "pgqueuer"), None)
    if worker is not None and pgq is not None:
        target = Target(">=", 1.5, ">= 1.5x pgqueuer")
        out.append(ratio("drain", "pulser-ops worker / pgqueuer", worker, pgq, target))
    if pgq is not None:  # experiments: the same ratio, for information (nothing of it shipped)
        for c, m in rows.items():
            if c.system.startswith(EXPERIMENT):
                name = f"pulser-ops worker, experiment {experiment_name(c.system)} / pgqueuer"
                out.append(ratio("drain", name, m, pgq, None))
    for peer, factor in (("pgqueuer", 2.0), ("procrastinate", 10.0)):
        theirs = [(c, m) for c, m in rows.items() if c.system == peer]
        for i, (c, m) in enumerate(theirs):
            out.append(
                Measurement(
                    "drain",
                    f"best pulser-ops / {peer}" if i == 0 else f"best pulser-ops / {c.label}",
                    best.system,
                    "x",
                    [a / b for a, b in zip(best.values, m.values, strict=True)],
                    Target(">=", factor, f">= {factor:g}x {peer}") if i == 0 else None,
                )
            )
    return out
