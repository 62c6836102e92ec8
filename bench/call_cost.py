"""What the hot calls cost the server, by batch size: claim + complete, and enqueue.

``.venv/bin/python bench/call_cost.py [--dsn URL] [--reps 60] [--experiment FILE[+FILE...]]``: a throwaway benchmark cluster
(or ``--dsn``), the shipped schema, then on one connection: claim a batch, complete it (each
completion carrying a step row and two step events, as the reference worker sends them), again
and again; median wall-clock milliseconds per call (at least 60 calls, 2,000 items), and the server process's CPU per run
(``/proc/<backend pid>/stat``, when the server is on this machine), through the statement the SDK sends
(``select coalesce(json_agg(r), '[]')::text from (select * from public.<fn>(...)) r``).

Enqueue is measured beside a bare ``INSERT`` of the same rows into ``runs`` (no function, no
checks, the table's indexes, constraints and triggers only): the floor any enqueue of ours
has, whatever its SQL.

Why: to know whether a target is out of reach of the SQL itself before tuning it
(docs/benchmarks.md, "What recording less would buy").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from cluster import open_server  # noqa: E402

CLAIM = (
    "select coalesce(json_agg(r), '[]')::text from (select * from public.claim_runs("
    "worker_id => %s::text, lanes => %s::text[], max_runs => %s::integer)) r"
)
ENQUEUE = (
    "select coalesce(json_agg(r), '[]')::text from (select * from public.enqueue_runs("
    "runs => %s::jsonb)) r"
)
# The columns enqueue_runs writes, as it writes them for the seed's noop template.
BARE_INSERT = """
insert into public.runs (id, template, lane, status, priority, attempt, max_attempts,
                         lease_seconds, params, available_at, sweep_count, version, created_at,
                         updated_at, template_version)
select gen_random_uuid(), 'noop', 'A', 'queued', 0, 0, 3, 60, p, now(), 0, 1, now(), now(), 1
from unnest(%s::jsonb[]) as p
returning id
"""
COMPLETE = (
    "select coalesce(json_agg(r), '[]')::text from (select * from public.complete_runs("
    "worker_id => %s::text, runs => %s::jsonb)) r"
)


def backend_cpu_ms(pid: int) -> float | None:
    """CPU time the server process has used (user + system), when the server is local."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def completion(run: dict[str, object]) -> dict[str, object]:
    return {
        "run_id": run["id"],
        "attempt": run["attempt"],
        "status": "succeeded",
        "result": {"ok": 1},
        "steps": [{"idx": 0, "name": "handler", "kind": "python", "status": "succeeded"}],
        "events": [{"kind": "step.started", "message": "m"}, {"kind": "step.finished"}],
    }


class Timer:
    """Median wall-clock ms per call, and the server process's CPU ms per item, of a loop."""

    def __init__(self, conn: psycopg.Connection[tuple[object, ...]], reps: int) -> None:
        self.pid = int(conn.execute("select pg_backend_pid()").fetchone()[0])  # type: ignore[index]
        self.reps = reps  # at least; the first sixth plan and prepare, and are not counted

    def run(self, n: int, *calls: Callable[[], object]) -> list[float | None]:
        # Enough calls for the CPU clock (it ticks every 10 ms) to say something per item.
        reps = max(self.reps, 2000 // n)
        skip = reps // 6
        times: list[list[float]] = [[] for _ in calls]
        cpu0 = 0.0
        for rep in range(reps):
            if rep == skip:
                cpu0 = backend_cpu_ms(self.pid) or 0.0
            for i, call in enumerate(calls):
                t = time.perf_counter()
                call()
                times[i].append(time.perf_counter() - t)
        cpu1 = backend_cpu_ms(self.pid)
        cpu = None if cpu1 is None else (cpu1 - cpu0) / ((reps - skip) * n)
        return [statistics.median(t[skip:]) * 1000 for t in times] + [cpu]


def cell(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    p.add_argument("--dsn")
    p.add_argument("--reps", type=int, default=60)
    p.add_argument(
        "--experiment", metavar="FILE[+FILE...]", help="SQL applied after the schema, in order"
    )
    a = p.parse_args()
    from pulser_ops.db.migrate import push

    server = open_server(a.dsn, durable=False)
    try:
        url = server.create_database("call_cost")
        push(url, include_seed=True)
        if a.experiment:
            with psycopg.connect(url, autocommit=True) as conn:
                for f in a.experiment.split("+"):
                    conn.execute(Path(f).read_text())  # type: ignore[arg-type]
        hot, enq = [], []
        with psycopg.connect(url, autocommit=True, prepare_threshold=0) as conn:
            timer = Timer(conn, a.reps)
            rtt = timer.run(1, lambda: conn.execute("select 1").fetchone())[0]
            for n in (1, 10, 100):
                batch = [{"template": "noop", "params": {"i": i}} for i in range(n)]
                for _ in range(max(a.reps, 2000 // n)):
                    conn.execute("select count(*) from public.enqueue_runs(%s)", (Jsonb(batch),))
                claimed: list[dict[str, object]] = []

                def claim(n: int = n, claimed: list[dict[str, object]] = claimed) -> None:
                    text = conn.execute(CLAIM, ("bench", ["A"], n)).fetchone()[0]  # type: ignore[index]
                    claimed[:] = json.loads(text)

                def complete(claimed: list[dict[str, object]] = claimed) -> None:
                    conn.execute(COMPLETE, ("bench", Jsonb([completion(r) for r in claimed])))

                hot.append((n, *timer.run(n, claim, complete)))
            for n in (1, 1000):
                batch = [{"template": "noop", "params": {"i": i}} for i in range(n)]
                params = [Jsonb({"i": i}) for i in range(n)]
                fn = timer.run(n, lambda b=batch: conn.execute(ENQUEUE, (Jsonb(b),)).fetchone())
                bare = timer.run(n, lambda p=params: conn.execute(BARE_INSERT, (p,)).fetchall())
                enq.append((n, fn, bare))
        print(f"bare round trip (select 1): {rtt:.3f} ms")
        print()
        print(
            "| batch | claim_runs ms/call | complete_runs ms/call | claim + complete ms/run "
            "| server CPU ms/run |"
        )
        print("|---:|---:|---:|---:|---:|")
        for n, c_ms, m_ms, cpu in hot:
            print(f"| {n} | {c_ms:.2f} | {m_ms:.2f} | {(c_ms + m_ms) / n:.3f} | {cell(cpu)} |")
        print()
        print(
            "| runs per call | enqueue_runs ms/call | server CPU ms/run "
            "| bare INSERT ms/call | server CPU ms/run |"
        )
        print("|---:|---:|---:|---:|---:|")
        for n, (f_ms, f_cpu), (b_ms, b_cpu) in enq:
            print(f"| {n} | {f_ms:.3f} | {cell(f_cpu, 4)} | {b_ms:.3f} | {cell(b_cpu, 4)} |")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
