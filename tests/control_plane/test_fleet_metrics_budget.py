"""fleet_metrics under a statement_timeout (direct PostgreSQL): when the caller's timeout runs out
mid-count, the function catches the cancel and answers from the planner's estimates, flagged,
instead of failing the scrape."""

from __future__ import annotations

import psycopg
import pytest

import pulser_ops


@pytest.mark.slow
def test_a_timeout_gives_estimates_not_an_error(db_url: str, tmp_path: object) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("insert into public.run_templates (name) values ('bulk')")
        conn.execute(
            "insert into public.runs (template, lane, status, max_attempts, lease_seconds)"
            " select 'bulk', 'A', 'queued', 1, 60 from generate_series(1, 300000)"
        )
        conn.execute("analyze public.runs")
        conn.execute("insert into public.workers (id, lanes) values ('w-1', '{A}')")
    with pulser_ops.connect(db_url) as client:
        exact = client.monitoring.fleet(exact_limit=1_000_000)
        assert exact.exact and {q.lane: q.queued for q in exact.lanes}["A"] == 300_000
        cut = client.monitoring.fleet(exact_limit=1_000_000, timeout_ms=20)
    assert not cut.exact and not cut.finished_exact
    lanes = {q.lane: q for q in cut.lanes}
    assert lanes["A"].queued > 100_000 and not lanes["A"].exact  # the planner's estimate
    assert lanes["A"].oldest_age_seconds is None and lanes["A"].templates == {}
    assert all(r.stuck is None for r in cut.running)  # not counted, and said so
    [worker] = cut.workers
    assert worker.id == "w-1" and worker.running is None
