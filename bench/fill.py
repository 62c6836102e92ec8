"""Building queue depth fast, as superuser, with plain SQL (no SDK, no triggers).

Why bypass the SDK: a million enqueues through ``enqueue_runs`` would take longer than the
whole benchmark; the shape of the rows (and so the claim path's plans) is what matters.
``session_replication_role = replica`` skips the notify triggers, which would otherwise
aggregate every id of the statement into one array.
"""

from __future__ import annotations

import psycopg

QUEUED = """
insert into public.runs (template, lane, status, priority, attempt, max_attempts, lease_seconds,
                         params, available_at, created_at, updated_at)
select %(template)s, 'A', 'queued', 0, 0, 3, 30, jsonb_build_object('i', g),
       now() - interval '1 hour', now() - interval '1 hour' + g * interval '1 microsecond',
       now() - interval '1 hour'
from generate_series(1, %(n)s) g
"""

EXPIRED = """
insert into public.runs (template, lane, status, priority, attempt, max_attempts, lease_seconds,
                         params, worker_id, claimed_at, heartbeat_at, lease_expires_at,
                         available_at, created_at, updated_at)
select 'noop', 'A', 'running', 0, 1, 3, 30, jsonb_build_object('i', g), 'dead-worker',
       now() - interval '10 minutes', now() - interval '10 minutes',
       now() - interval '9 minutes' - g * interval '1 microsecond',
       now() - interval '11 minutes', now() - interval '11 minutes', now() - interval '10 minutes'
from generate_series(1, %(n)s) g
"""


def insert(url: str, sql_text: str, n: int, template: str = "noop") -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("set session_replication_role = replica")
        conn.execute(sql_text, {"n": n, "template": template})  # type: ignore[arg-type]
        conn.execute("reset session_replication_role")
        conn.execute("vacuum analyze public.runs")


def queued(url: str, n: int, template: str = "noop") -> None:
    """``n`` queued runs of ``template`` (an existing one) in lane A."""
    insert(url, QUEUED, n, template)


def expired(url: str, n: int) -> None:
    insert(url, EXPIRED, n)
