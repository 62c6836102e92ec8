"""Where claim + complete spend their time, and what candidate SQL changes would save.

``python bench/profile_hot_path.py [--dsn URL] [--experiment FILE ...]``: for each variant (the
shipped migrations, and the migrations plus each candidate SQL file, applied to a scratch
database only), pgbench runs claim_runs + complete_run from one client with pg_stat_statements
tracking nested statements and planning. Reported per variant: server time per claim and per
complete (planning + execution, median over repetitions), and for the shipped migration the
nested statements that are planned on every call.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import psycopg  # noqa: E402

import fill  # noqa: E402
from cluster import open_server  # noqa: E402
from common import BENCH_DIR, log  # noqa: E402

PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
TOP = """
select calls, plans, total_plan_time, total_exec_time, regexp_replace(query, '\\s+', ' ', 'g')
from pg_stat_statements where dbid = (select oid from pg_database where datname = current_database())
order by total_plan_time + total_exec_time desc limit 25
"""


def per_call(url: str, txns: int) -> tuple[float, float, list[tuple[object, ...]]]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select pg_stat_statements_reset()")
    subprocess.run(
        [
            PGBENCH,
            "-n",
            "-M",
            "prepared",
            "-c",
            "1",
            "-t",
            str(txns),
            "-f",
            str(BENCH_DIR / "pgbench" / "claim_complete.sql"),
            url,
        ],
        check=True,
        capture_output=True,
    )
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(TOP).fetchall()
    claim = next(
        r for r in rows if "public.claim_runs(" in str(r[4]) and str(r[4]).startswith("select id")
    )
    done = next(
        r for r in rows if "public.complete_run(" in str(r[4]) and str(r[4]).startswith("select $")
    )
    ms = [(float(r[2]) + float(r[3])) / int(r[0]) for r in (claim, done)]  # type: ignore[arg-type]
    return ms[0], ms[1], rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    p.add_argument("--dsn")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--txns", type=int, default=300)
    p.add_argument(
        "--experiment",
        action="append",
        default=[],
        metavar="FILE",
        help="SQL applied on top of the migrations as one more variant (repeatable)",
    )
    a = p.parse_args()
    variants: list[tuple[str, list[Path]]] = [("shipped migrations", [])]
    variants += [(f"+ {Path(f).name}", [Path(f)]) for f in a.experiment]
    sys.path.insert(0, str(HERE.parent / "src"))
    from pulser_ops.db.migrate import push

    server = open_server(a.dsn, durable=False)
    try:
        import settings

        print(
            settings.render(
                settings.collect(
                    server.admin_url,
                    {},
                    {
                        "repetitions": a.reps,
                        "pgbench transactions": a.txns,
                        "clients": 1,
                        "pg_stat_statements.track": "all",
                        "track_planning": "on",
                    },
                )
            ),
            flush=True,
        )
        tpl = server.create_database("prof_tpl")
        push(tpl, include_seed=True)
        with psycopg.connect(tpl, autocommit=True) as conn:
            conn.execute("create extension if not exists pg_stat_statements")
        results: dict[str, list[tuple[float, float]]] = {v: [] for v, _ in variants}
        baseline_rows: list[tuple[object, ...]] = []
        for rep in range(a.reps):
            for label, files in variants:  # interleaved, so machine load hits every variant
                url = server.create_database("prof", template="prof_tpl")
                with psycopg.connect(url, autocommit=True) as conn:
                    for f in files:
                        conn.execute(f.read_text())  # type: ignore[arg-type]
                    conn.execute("alter database prof set pg_stat_statements.track = 'all'")
                    conn.execute("alter database prof set pg_stat_statements.track_planning = on")
                fill.queued(url, a.txns + 50)
                claim, done, rows = per_call(url, a.txns)
                results[label].append((claim, done))
                if not files and rep == 0:
                    baseline_rows = rows
                server.drop_database("prof")
            log(f"rep {rep + 1} done")
        print("\nServer time per call (planning + execution), median [min] over repetitions, ms")
        print(f"{'variant':32} {'claim_runs':>18} {'complete_run':>18} {'sum':>8}")
        for label, vals in results.items():
            c = [v[0] for v in vals]
            d = [v[1] for v in vals]
            print(
                f"{label:32} {statistics.median(c):9.3f} [{min(c):6.3f}] "
                f"{statistics.median(d):9.3f} [{min(d):6.3f}] "
                f"{statistics.median(c) + statistics.median(d):8.3f}"
            )
        print("\nclaim_runs batching (shipped migration), server ms per claimed run, median [min]:")
        for script, per in (("claim_only_1.sql", 1), ("claim_only_10.sql", 10)):
            vals = []
            for _ in range(a.reps):
                url = server.create_database("prof", template="prof_tpl")
                fill.queued(url, a.txns * per + 50)
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("select pg_stat_statements_reset()")
                subprocess.run(
                    [
                        PGBENCH,
                        "-n",
                        "-M",
                        "prepared",
                        "-c",
                        "1",
                        "-t",
                        str(a.txns),
                        "-f",
                        str(BENCH_DIR / "pgbench" / script),
                        url,
                    ],
                    check=True,
                    capture_output=True,
                )
                with psycopg.connect(url, autocommit=True) as conn:
                    row = conn.execute(
                        "select sum(total_plan_time + total_exec_time), sum(calls) "
                        "from pg_stat_statements where query ilike '%%public.claim_runs(%%' "
                        "and dbid = (select oid from pg_database where datname = 'prof')"
                    ).fetchone()
                assert row is not None
                vals.append(float(row[0]) / (float(row[1]) * per))
                server.drop_database("prof")
            print(f"  max_runs {per:>2}: {statistics.median(vals):7.3f} [{min(vals):6.3f}] ms/run")
        print("\nShipped migration, nested statements (calls, plans, plan ms, exec ms, query):")
        for r in baseline_rows[:18]:
            print(f"{r[0]:>6} {r[1]:>6} {float(r[2]):9.1f} {float(r[3]):9.1f}  {str(r[4])[:110]}")  # type: ignore[arg-type]
    finally:
        server.stop()


if __name__ == "__main__":
    main()
