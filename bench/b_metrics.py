"""What monitoring costs the database at 1,000,000 runs: fleet_metrics (every Prometheus scrape),
performance_stats (the Performance page, `pulser-ops stats`) and evaluate_alerts (every alert
evaluation), against the naive exact queries they stand in for.

    .venv/bin/python bench/b_metrics.py                    # 1,000,000 runs
    .venv/bin/python bench/b_metrics.py --runs 200000 --reps 20
    .venv/bin/python bench/b_metrics.py --out bench/results/metrics.json

The table, on a throwaway benchmark cluster (bench/cluster.py settings): --runs runs over the
last two weeks in 6 templates and 4 lanes, 97 % succeeded / 2 % failed / 1 % cancelled, with
2 step rows each; plus --queued queued runs, 40 running (3 of them stuck) and 12 workers (2
stale). Each statement runs --reps times after two warm-up runs; the server-side time of each is
measured with clock_timestamp() around it (no client round trip), median and p95 in ms.

"Naive" rows are what a straightforward exporter would run for the same numbers: exact counts
by lane, template and status over the whole table (what Oban's and PgQueuer's collectors do),
and exact percentiles over every run of the period.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import psycopg

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from cluster import start_bench_cluster  # noqa: E402
from pulser_ops.alerts import Rules  # noqa: E402
from pulser_ops.db.migrate import push  # noqa: E402

FILL = """
set session_replication_role = replica;
insert into public.run_templates (name) values ('report'), ('crawl'), ('resize'), ('notify'),
  ('export'), ('sync') on conflict do nothing;
insert into public.runs (template, lane, status, priority, attempt, max_attempts, lease_seconds,
                         params, worker_id, claimed_at, heartbeat_at, available_at, created_at,
                         updated_at, finished_at, error, result)
select (array['report', 'crawl', 'resize', 'notify', 'export', 'sync'])[1 + g % 6],
       (array['A', 'B', 'C', 'D'])[1 + g % 4],
       case when g % 50 = 0 then 'failed' when g % 100 = 1 then 'cancelled' else 'succeeded' end,
       0, 1, 3, 60, jsonb_build_object('i', g, 'url', 'https://example.com/' || g),
       'w-' || (g % 12), t - took, t - interval '1 second', t - took - waited, t - took - waited,
       t, t, case when g % 50 = 0 then 'boom ' || g end,
       case when g % 50 <> 0 then jsonb_build_object('ok', g) end
from (select g, now() - (RUNS - g) * (interval '14 days' / RUNS) as t,
             make_interval(secs => 0.05 + random() * 30) as took,
             make_interval(secs => random() * 5) as waited
      from generate_series(1, RUNS) g) s;
insert into public.run_steps (run_id, attempt, idx, name, kind, status, started_at, finished_at)
select r.id, 1, s.idx, 'step-' || s.idx, (array['shell', 'http', 'python'])[1 + (s.idx + ascii(r.template)) % 3],
       case when r.status = 'failed' and s.idx = 1 then 'failed' else 'succeeded' end,
       r.claimed_at + (r.finished_at - r.claimed_at) * s.idx / 2,
       r.claimed_at + (r.finished_at - r.claimed_at) * (s.idx + 1) / 2
from public.runs r cross join (values (0), (1)) s(idx)
where r.status <> 'cancelled';
insert into public.runs (template, lane, status, priority, attempt, max_attempts, lease_seconds,
                         params, available_at, created_at, updated_at)
select 'crawl', (array['A', 'B', 'C', 'D'])[1 + g % 4], 'queued', (g % 3) - 1, 0, 3, 60,
       jsonb_build_object('i', g), now() - g * interval '10 ms', now() - g * interval '10 ms',
       now() - g * interval '10 ms'
from generate_series(1, QUEUED) g;
insert into public.runs (template, lane, status, priority, attempt, max_attempts, lease_seconds,
                         params, worker_id, claimed_at, heartbeat_at, lease_expires_at,
                         available_at, created_at, updated_at)
select 'report', (array['A', 'B', 'C', 'D'])[1 + g % 4], 'running', 0, 1, 3, 60,
       jsonb_build_object('i', g), 'w-' || (g % 12), now() - interval '40 seconds',
       now() - interval '3 seconds',
       case when g <= 3 then now() - interval '2 minutes' else now() + interval '57 seconds' end,
       now() - interval '1 minute', now() - interval '1 minute', now()
from generate_series(1, 40) g;
insert into public.workers (id, host, lanes, concurrency, last_seen_at, metadata)
select 'w-' || g, 'host-' || g, '{A,B,C,D}', 4,
       case when g < 2 then now() - interval '5 minutes' else now() - interval '2 seconds' end,
       '{"heartbeat_seconds": 10}'
from generate_series(0, 11) g;
reset session_replication_role;
"""

NAIVE_FLEET = """
select r.lane, r.template, r.status, count(*) from public.runs r group by 1, 2, 3
"""
NAIVE_WEEK = """
select r.template, count(*),
       percentile_cont(array[0.5, 0.95, 0.99]) within group (
         order by extract(epoch from r.finished_at - r.claimed_at))
from public.runs r where r.finished_at >= now() - interval '7 days' group by 1
"""


def timed(
    conn: psycopg.Connection, sql: str, params: dict[str, object], reps: int
) -> dict[str, float]:
    """Server-side milliseconds of ``sql`` (clock_timestamp around it, in one statement)."""
    probe = (
        "select extract(epoch from clock_timestamp() - t0) * 1000 from"
        f" (select clock_timestamp() as t0) a, lateral (select count(*) from ({sql}) q) b"
    )
    times = []
    for _ in range(reps + 2):
        row = conn.execute(probe.encode(), params).fetchone()
        assert row is not None
        times.append(float(row[0]))
    times = sorted(times[2:])
    return {"median_ms": round(statistics.median(times), 2),
            "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 2)}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    p.add_argument("--runs", type=int, default=1_000_000)
    p.add_argument("--queued", type=int, default=10_000)
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here too")
    args = p.parse_args()
    server = start_bench_cluster(durable=False)
    results: dict[str, object] = {"runs": args.runs, "queued": args.queued, "reps": args.reps}
    try:
        url = server.create_database("metrics")
        push(url)
        t0 = time.monotonic()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                FILL.replace("RUNS", str(args.runs)).replace("QUEUED", str(args.queued)).encode()
            )
            conn.execute("vacuum analyze public.runs")
            conn.execute("vacuum analyze public.run_steps")
            size = conn.execute(
                "select pg_size_pretty(pg_total_relation_size('public.runs')),"
                " pg_size_pretty(pg_total_relation_size('public.run_steps')),"
                " (select count(*) from public.runs)").fetchone()  # fmt: skip
        print(f"filled in {time.monotonic() - t0:.0f} s: runs {size}", file=sys.stderr)
        results["table"] = {"runs_size": size[0], "run_steps_size": size[1], "rows": size[2]}
        rules = json.dumps(Rules().sql())
        cases = {
            "fleet_metrics()": ("select * from public.fleet_metrics()", {}),
            "performance_stats('hour')": ("select * from public.performance_stats('hour')", {}),
            "performance_stats('day')": ("select * from public.performance_stats('day')", {}),
            "performance_stats('week')": ("select * from public.performance_stats('week')", {}),
            # in a transaction that is rolled back: the incidents it opens stay out of the next rep
            "alert_conditions(defaults)": (
                "select * from pulser_ops.alert_conditions(%(rules)s::jsonb)", {"rules": rules}),
            "naive: count by lane, template, status": (NAIVE_FLEET, {}),
            "naive: exact week percentiles": (NAIVE_WEEK, {}),
        }  # fmt: skip
        timings: dict[str, dict[str, float]] = {}
        with psycopg.connect(url, autocommit=True) as conn:
            for name, (sql, params) in cases.items():
                timings[name] = timed(conn, sql, params, args.reps)
                print(f"{name:45s} median {timings[name]['median_ms']:9.2f} ms"
                      f"   p95 {timings[name]['p95_ms']:9.2f} ms", flush=True)  # fmt: skip
            fleet = conn.execute("select metrics from public.fleet_metrics()").fetchone()[0]
            week = conn.execute("select stats from public.performance_stats('week')").fetchone()[0]
        results["timings"] = timings
        results["fleet_exact"] = {"queues": fleet["exact"], "finished": fleet["finished_exact"],
                                  "finished_sample_percent": fleet["finished_sample_percent"]}  # fmt: skip
        results["week_exact"] = {"exact": week["exact"], "sample_percent": week["sample_percent"],
                                 "runs_read": week["runs_read"], "step_runs": week["step_runs"]}  # fmt: skip
        print(json.dumps(results, indent=2))
        if args.out is not None:
            args.out.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
