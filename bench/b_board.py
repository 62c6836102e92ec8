"""The Ops Control Room at scale: server-side render times, and what open tabs cost the database.

    .venv/bin/python bench/b_board.py                 # 1,000,000 finished + 10,000 queued runs
    .venv/bin/python bench/b_board.py --finished 100000 --window 30

Measures, on a throwaway benchmark cluster (bench/cluster.py settings):
- render of the Runboard partial and of the runs list's first page (with its count), server
  side through the ASGI app, each read going to the database (the shared-read cache is
  cleared before every request): median and p95 over --reps; target < 300 ms each;
- database statements per second of an idle open board (one tab: its SSE stream plus the
  15 s polling floor) over --window seconds; target < 1/s;
- the same with 50 tabs, idle and while a run changes every second, against one tab: 50 tabs
  must cost the database no more than one (one listener, shared reads).
Statements are counted with pg_stat_statements (calls of everything but its own queries).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import sys
import time
from pathlib import Path

import httpx
import psycopg

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

import pulser_ops  # noqa: E402
from cluster import start_bench_cluster  # noqa: E402
from pulser_ops.db.migrate import push  # noqa: E402
from pulser_ops.web import ControlRoom, WebConfig, create_app  # noqa: E402
from pulser_ops.web.server import serve_in_thread  # noqa: E402

FILL = """
set session_replication_role = replica;
insert into public.run_templates (name) values ('noop'), ('report'), ('crawl')
  on conflict do nothing;
insert into public.runs (template, lane, status, priority, attempt, max_attempts, lease_seconds,
                         params, worker_id, claimed_at, heartbeat_at, available_at, created_at,
                         updated_at, finished_at, error, result)
select (array['noop', 'report', 'crawl'])[1 + g % 3], (array['A', 'B', 'C', 'D'])[1 + g % 4],
       case when g % 20 = 0 then 'failed' when g % 50 = 1 then 'cancelled' else 'succeeded' end,
       0, 1, 3, 60, jsonb_build_object('i', g, 'url', 'https://example.com/' || g),
       'w-' || (g % 8), t - interval '20 seconds', t - interval '5 seconds', t - interval '30 seconds',
       t - interval '30 seconds', t, t,
       case when g % 20 = 0 then 'boom ' || g end,
       case when g % 20 <> 0 then jsonb_build_object('ok', g) end
from (select g, now() - (FINISHED - g) * interval '2.5 seconds' as t
      from generate_series(1, FINISHED) g) s;
insert into public.runs (template, lane, status, priority, attempt, max_attempts, lease_seconds,
                         params, available_at, created_at, updated_at)
select 'noop', (array['A', 'B', 'C', 'D'])[1 + g % 4], 'queued', 0, 0, 3, 60,
       jsonb_build_object('i', g), now() - g * interval '10 ms', now() - g * interval '10 ms',
       now() - g * interval '10 ms'
from generate_series(1, QUEUED) g;
insert into public.runs (template, lane, status, priority, attempt, max_attempts, lease_seconds,
                         params, worker_id, claimed_at, heartbeat_at, lease_expires_at,
                         available_at, created_at, updated_at)
select 'crawl', (array['A', 'B', 'C', 'D'])[1 + g % 4], 'running', 0, 1, 3, 60,
       jsonb_build_object('i', g), 'w-' || (g % 8), now() - interval '40 seconds',
       now() - interval '3 seconds', now() + interval '57 seconds', now() - interval '1 minute',
       now() - interval '1 minute', now()
from generate_series(1, 24) g;
insert into public.run_events (run_id, seq, kind, message)
select r.id, s, 'log', 'line ' || s from public.runs r, generate_series(1, 20) s
where r.status = 'running';
reset session_replication_role;
"""


def statements(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "select coalesce(sum(calls), 0) from pg_stat_statements s"
            " join pg_database d on d.oid = s.dbid"
            " where d.datname = current_database() and s.query not ilike '%pg_stat_statements%'"
        ).fetchone()
    return int(row[0]) if row else 0


def reset_statements(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select pg_stat_statements_reset()")


async def render_times(url: str, reps: int) -> dict[str, dict[str, float]]:
    client = await pulser_ops.aconnect(url)
    room = ControlRoom(client)
    app = create_app(room=room)
    out: dict[str, dict[str, float]] = {}
    async with room:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            for name, path in (("board", "/partials/board"), ("runs first page", "/partials/runs")):
                times = []
                for _ in range(reps + 2):
                    room.reads.forget()
                    t0 = time.perf_counter()
                    resp = await http.get(path)
                    times.append((time.perf_counter() - t0) * 1000)
                    assert resp.status_code == 200, resp.text[:500]
                times = sorted(times[2:])  # the first two warm the caches and plans
                out[name] = {
                    "median_ms": round(statistics.median(times), 1),
                    "p95_ms": round(times[int(len(times) * 0.95) - 1], 1),
                }
    await client.close()
    return out


async def tabs(base: str, n: int, window: float, poll: float, churn_url: str | None) -> None:
    """n tabs: each holds the SSE stream and refreshes the board on a signal or a poll."""
    stop = asyncio.Event()

    async def tab(i: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=None) as http:
            wake = asyncio.Event()

            async def listen() -> None:
                with contextlib.suppress(httpx.HTTPError):
                    async with http.stream("GET", "/events") as resp:
                        async for line in resp.aiter_lines():
                            if line.startswith("event: change"):
                                wake.set()

            listener = asyncio.create_task(listen())
            await asyncio.sleep(random.random() * poll)  # tabs opened at different times
            while not stop.is_set():
                await http.get("/partials/board")
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), poll)
                    await asyncio.sleep(1.0)  # the page's 1 s throttle
                except TimeoutError:
                    pass
            listener.cancel()

    async def churn() -> None:
        assert churn_url is not None
        async with await psycopg.AsyncConnection.connect(churn_url, autocommit=True) as conn:
            while not stop.is_set():
                await conn.execute("select public.enqueue_run('noop', '{}'::jsonb, 'A')")
                await asyncio.sleep(1.0)

    tasks = [asyncio.create_task(tab(i)) for i in range(n)]
    if churn_url:
        tasks.append(asyncio.create_task(churn()))
    await asyncio.sleep(window)
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def tab_cost(url: str, app_url: str, n: int, window: float, churn: bool, poll: float) -> float:
    settings = pulser_ops.resolve(app_url)
    app = create_app(settings=settings, config=WebConfig(poll_seconds=int(poll)))
    with serve_in_thread(app) as base:
        time.sleep(2.0)  # the listener connects and catches up
        reset_statements(url)
        asyncio.run(tabs(base, n, window, poll, url if churn else None))
        calls = statements(url)
    churn_calls = window if churn else 0  # the churn's own enqueue statements
    return round(max(0.0, calls - churn_calls) / window, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--finished", type=int, default=1_000_000)
    ap.add_argument("--queued", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--window", type=float, default=60.0, help="seconds per tab measurement")
    ap.add_argument("--poll", type=float, default=15.0)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    server = start_bench_cluster(durable=False)
    try:
        url = server.create_database("board")
        push(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("create extension if not exists pg_stat_statements")
            t0 = time.monotonic()
            fill = FILL.replace("FINISHED", str(int(args.finished)))
            conn.execute(fill.replace("QUEUED", str(int(args.queued))).encode())
            conn.execute("vacuum analyze")
            print(f"filled {args.finished:,} finished + {args.queued:,} queued runs in "
                  f"{time.monotonic() - t0:.0f}s", flush=True)  # fmt: skip
        results: dict[str, object] = {"finished": args.finished, "queued": args.queued}
        results["render"] = asyncio.run(render_times(url, args.reps))
        print("render:", json.dumps(results["render"]), flush=True)
        for label, n, churn in (("1 tab idle", 1, False), ("50 tabs idle", 50, False),
                                ("1 tab, a change a second", 1, True),
                                ("50 tabs, a change a second", 50, True)):  # fmt: skip
            results[label] = tab_cost(url, url, n, args.window, churn, args.poll)
            print(f"{label}: {results[label]} statements/s", flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
