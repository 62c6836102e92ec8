"""The ceiling: pgbench driving the same claim/complete transactions with no Python at all.

Two scripts: the control plane's own functions (``claim_runs`` + ``complete_run``), and a bare
``UPDATE ... SKIP LOCKED`` on a minimal table: the distance between them is what the control
plane's checks, events and notifications cost; the distance to the drain numbers is what
the client side costs.
"""

from __future__ import annotations

import re

import psycopg

import fill
from common import BENCH_DIR, Measurement, Target, log, ratio, run_checked
from ctx import Ctx
from setup_env import experiment_name

PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
BARE = """
create table bare_jobs (id bigserial primary key, status text not null default 'queued',
                        payload jsonb not null default '{}', taken_at timestamptz,
                        done_at timestamptz);
create index bare_jobs_queued on bare_jobs (id) where status = 'queued';
"""


def pgbench(url: str, script: str, clients: int, per_client: int) -> float:
    out = run_checked(
        [
            PGBENCH,
            "-n",
            "-M",
            "prepared",
            "-c",
            str(clients),
            "-j",
            str(min(clients, 2)),
            "-t",
            str(per_client),
            "-f",
            str(BENCH_DIR / "pgbench" / script),
            url,
        ],
        timeout=900,
    )
    m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
    if not m:
        raise RuntimeError(f"no tps in pgbench output:\n{out}")
    if "number of failed transactions: 0" not in out and "failed" in out:
        fails = re.search(r"number of failed transactions: (\d+)", out)
        if fails and int(fails.group(1)) > 0:
            raise RuntimeError(f"pgbench had failures:\n{out}")
    return float(m.group(1))


def run(ctx: Ctx) -> list[Measurement]:
    s = ctx.sizes
    clients = s.drain_procs
    per = s.drain_runs // clients
    ours = Measurement(
        "raw limit (pgbench)",
        "claim_runs + complete_run",
        f"runs/s, {clients} clients",
        "runs/s",
        note="pgbench -M prepared, limit 1 per claim",
    )
    bare = Measurement(
        "raw limit (pgbench)",
        "bare UPDATE ... SKIP LOCKED",
        f"runs/s, {clients} clients",
        "runs/s",
        note="minimal table, 2 updates",
    )
    batched = Measurement(
        "raw limit (pgbench)",
        "claim_runs + complete_runs, 100 per call",
        f"runs/s, {clients} clients",
        "runs/s",
        note="pgbench -M prepared, claim 100 then complete those 100 in one call",
    )
    # SQL not shipped (--experiment): the same limit-1 script on the schema with it applied.
    experiments = {
        k: Measurement(
            "raw limit (pgbench)",
            f"claim_runs + complete_run, experiment {experiment_name(k)}",
            f"runs/s, {clients} clients",
            "runs/s",
            note="the shipped schema with the experiment's SQL applied; not shipped",
        )
        for k in ctx.dbs.experiments_built()
    }
    for rep in range(s.reps):
        for system, m in experiments.items():
            url = ctx.dbs.fresh(system)
            fill.queued(url, s.drain_runs + clients)
            ctx.settle()
            m.values.append(pgbench(url, "claim_complete.sql", clients, per))
        url = ctx.dbs.fresh("pulser")
        fill.queued(url, s.drain_runs + 100 * clients)
        # Each transaction of claim_complete_batch.sql moves up to 100 runs: the rate is
        # transactions/s x 100 as long as every claim is full, so the queue holds enough.
        batches = max(1, per // 100)
        ctx.settle()
        batched.values.append(100 * pgbench(url, "claim_complete_batch.sql", clients, batches))
        url = ctx.dbs.fresh("pulser")
        fill.queued(url, s.drain_runs + clients)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(BARE)
            conn.execute(
                "insert into bare_jobs (payload) select jsonb_build_object('i', g) "
                "from generate_series(1, %s) g",
                [s.drain_runs + clients],
            )
            conn.execute("vacuum analyze bare_jobs")
        ctx.settle()
        ours.values.append(pgbench(url, "claim_complete.sql", clients, per))
        ctx.settle()
        bare.values.append(pgbench(url, "bare_skip_locked.sql", clients, per))
        log(
            f"raw rep {rep + 1}: control plane {ours.values[-1]:.0f}/s, "
            f"batched {batched.values[-1]:.0f}/s, bare {bare.values[-1]:.0f}/s"
        )
    # The last run before issue 18: 706 / 5,505 = 0.128 of the bare statement; the goal is twice
    # that share.
    share = Target(">=", 2 * 706 / 5505, ">= 0.256 (2x 706/5,505)")
    return [
        ours,
        batched,
        bare,
        *experiments.values(),
        ratio("raw limit (pgbench)", "control plane / bare", ours, bare, share),
        *(
            ratio("raw limit (pgbench)", f"experiment {experiment_name(k)} / bare", m, bare, None)
            for k, m in experiments.items()
        ),
    ]
