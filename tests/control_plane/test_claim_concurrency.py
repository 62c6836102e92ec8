"""Claim safety on real PostgreSQL: concurrent claimers never share a run, and the claim path
stays index-driven however many finished runs the table holds."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

TEMPLATE = {"name": "conc", "default_lane": "A", "max_attempts": 3}


def _setup(url: str, runs: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select public.upsert_template(%s)", [Jsonb(TEMPLATE)])
        lanes = "ABCD"
        batch = [{"template": "conc", "lane": lanes[i % 4]} for i in range(runs)]
        conn.execute("select count(*) from public.enqueue_runs(%s)", [Jsonb(batch)])


def _claimer(
    url: str, worker: str, out: list[str], errors: list[BaseException], start: threading.Event
) -> None:
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            start.wait()
            while True:
                rows = conn.execute(
                    "select id from public.claim_runs(%s, '{A,B,C,D}', 7, 60)", [worker]
                ).fetchall()
                if not rows:
                    return
                out.extend(str(r[0]) for r in rows)
    except BaseException as e:  # reported by the test thread
        errors.append(e)


@pytest.mark.parametrize("claimers", [2, 10])
def test_every_run_is_claimed_exactly_once(db_url: str, claimers: int) -> None:
    total = 2000
    _setup(db_url, total)
    start = threading.Event()
    claimed: list[list[str]] = [[] for _ in range(claimers)]
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_claimer, args=(db_url, f"w{i}", claimed[i], errors, start))
        for i in range(claimers)
    ]
    for t in threads:
        t.start()
    start.set()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    counts = Counter(run for per_worker in claimed for run in per_worker)
    assert len(counts) == total, "every run was claimed"
    assert max(counts.values()) == 1, "no run was claimed twice"
    # Each claimer really took part (SKIP LOCKED spreads work rather than serialising it).
    assert sum(1 for c in claimed if c) >= 2
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "select count(*) filter (where status = 'running' and attempt = 1),"
            " count(distinct worker_id), count(*) from public.runs"
        ).fetchone()
        assert row is not None
        assert row[0] == total and row[2] == total
        events = conn.execute(
            "select count(*) from public.run_events where kind = 'claimed'"
        ).fetchone()
        assert events is not None and events[0] == total, "one claim event per claim"


def _plans(conn: psycopg.Connection[Any], sql: str, params: list[Any]) -> list[str]:
    """Plans of every statement run inside the function, via auto_explain at NOTICE level."""
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    conn.execute("load 'auto_explain'")
    conn.execute("set auto_explain.log_min_duration = 0")
    conn.execute("set auto_explain.log_nested_statements = on")
    conn.execute("set auto_explain.log_level = notice")
    conn.execute(sql, params)
    conn.execute("set auto_explain.log_min_duration = -1")
    return notices


def test_hot_paths_stay_index_driven_with_100k_finished_runs(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        conn.execute("select public.upsert_template(%s)", [Jsonb(TEMPLATE)])
        conn.execute(
            """
            insert into public.runs (template, lane, status, attempt, max_attempts, lease_seconds,
                                     worker_id, claimed_at, finished_at, created_at)
            select 'conc', (array['A','B','C','D'])[1 + g % 4], 'succeeded', 1, 3, 60, 'old',
                   now() - interval '1 day', now() - interval '1 day', now() - interval '2 days'
            from generate_series(1, 100000) g
            """
        )
        conn.execute(
            "select count(*) from public.enqueue_runs(%s)",
            [Jsonb([{"template": "conc"} for _ in range(20)])],
        )
        conn.execute("select public.set_lane('B', max_running => 5)")
        conn.execute("analyze public.runs")
        claim = _plans(conn, "select * from public.claim_runs('w', '{A,B,C,D}', 5, 60)", [])
        held = conn.execute(
            "select id, attempt from public.runs where status = 'running'"
        ).fetchall()
        beat = _plans(
            conn,
            "select * from public.heartbeat_runs('w', %s)",
            [Jsonb([{"run_id": str(r["id"]), "attempt": r["attempt"]} for r in held])],
        )
        sweep = _plans(conn, "select * from public.sweep_expired_runs(500)", [])
    for name, plans in (
        ("claim_runs", claim),
        ("heartbeat_runs", beat),
        ("sweep_expired_runs", sweep),
    ):
        text = "\n".join(plans)
        assert "runs" in text, f"auto_explain captured the plans of {name}"
        assert "Seq Scan on runs" not in text, f"{name} scans runs sequentially:\n{text}"


def test_the_claim_reads_runs_claim_idx_in_order_at_depth(db_url: str) -> None:
    """100,000 queued runs of one batch (one created_at): the claim's pick walks
    runs_claim_idx in (priority, created_at, seq) order and stops after the rows it takes; it
    never sorts the queue. They come out first in, first out."""
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        conn.execute("select public.upsert_template(%s)", [Jsonb(TEMPLATE)])
        conn.execute(
            """
            insert into public.runs (template, lane, max_attempts, lease_seconds, params, created_at)
            select 'conc', 'A', 3, 60, jsonb_build_object('n', g), now() - interval '1 minute'
            from generate_series(1, 100000) g
            """
        )
        conn.execute("analyze public.runs")
        plans = _plans(conn, "select * from public.claim_runs('w', '{A,B,C,D}', 5, 60)", [])
        taken = conn.execute(
            "select (params ->> 'n')::int as n from public.runs where status = 'running'"
            " order by seq"
        ).fetchall()
    text = "\n".join(plans)
    assert "Index Scan using runs_claim_idx on runs r" in text, text
    assert "Sort Key: r.priority DESC, r.created_at, r.seq" not in text, text
    assert "Seq Scan on runs" not in text, text
    assert [r["n"] for r in taken] == [1, 2, 3, 4, 5]
