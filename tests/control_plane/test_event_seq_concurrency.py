"""Event seqs under concurrency, on real PostgreSQL.

Every writer of a run's events (claim, append, heartbeat-free complete, sweep, cancel) takes the
next seq from the events already there while holding the run's row lock. This storms one set of
runs with all of them at once, from separate connections, and checks what a reader relies on:
no writer fails (no duplicate seq, no deadlock between batches that lock several runs), every
run's events are numbered 1..n, and a reader following ``after_seq`` never skips an event.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

TEMPLATE = {"name": "seq", "default_lane": "A", "max_attempts": 100, "lease_seconds": 5}
RUNS = 24
SECONDS = 4.0


def _loop(
    url: str, stop: threading.Event, errors: list[BaseException], body: Callable[..., None]
) -> threading.Thread:
    def run() -> None:
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                rng = random.Random()
                while not stop.is_set():
                    body(conn, rng)
        except BaseException as e:  # reported by the test thread
            errors.append(e)
            stop.set()

    return threading.Thread(target=run, daemon=True)


def _ids(conn: psycopg.Connection[Any]) -> list[str]:
    return [str(r[0]) for r in conn.execute("select id from public.runs order by id").fetchall()]


def test_every_writer_continues_one_gap_free_sequence(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("select public.upsert_template(%s)", [Jsonb(TEMPLATE)])
        conn.execute(
            "select count(*) from public.enqueue_runs(%s)",
            [Jsonb([{"template": "seq"} for _ in range(RUNS)])],
        )
        ids = _ids(conn)

    def worker(name: str) -> Callable[..., None]:
        def body(conn: psycopg.Connection[Any], rng: random.Random) -> None:
            held = conn.execute(
                "select id, attempt from public.claim_runs(%s, '{A}', %s, 5)",
                [name, rng.randint(1, 6)],
            ).fetchall()
            batch = [{"run_id": str(i), "attempt": a} for i, a in held]
            if not batch:
                return
            conn.execute("select count(*) from public.heartbeat_runs(%s, %s)", [name, Jsonb(batch)])
            time.sleep(rng.uniform(0, 0.02))  # the work (no transaction open), racing the others
            # Give the runs back to the queue (a failure with attempts left), so the storm goes
            # on; the batch is locked in id order, as heartbeats and appends lock theirs.
            done = [{**b, "status": "failed", "error": "again"} for b in batch]
            conn.execute("select count(*) from public.complete_runs(%s, %s)", [name, Jsonb(done)])

        return body

    def appender(conn: psycopg.Connection[Any], rng: random.Random) -> None:
        events = [
            {"run_id": rid, "kind": "log", "message": f"line {n}"}
            for rid in rng.sample(ids, rng.randint(1, 8))
            for n in range(rng.randint(1, 3))
        ]
        conn.execute("select count(*) from public.append_run_events(%s)", [Jsonb(events)])

    def expirer(conn: psycopg.Connection[Any], _: random.Random) -> None:
        # A worker "dies": its lease is set in the past, and the sweeper requeues the run.
        conn.execute(
            "update public.runs set lease_expires_at = now() - interval '1 minute',"
            " version = version + 1, updated_at = now()"
            " where status = 'running' and id = (select id from public.runs"
            "  where status = 'running' order by random() limit 1)"
        )
        conn.execute("select count(*) from public.sweep_expired_runs(50)")

    def heartbeater(conn: psycopg.Connection[Any], rng: random.Random) -> None:
        # Heartbeats of whatever runs are held, sent by their worker, racing its completions.
        for name in ("w1", "w2"):
            held = conn.execute(
                "select id, attempt from public.runs where status = 'running' and worker_id = %s",
                [name],
            ).fetchall()
            batch = [{"run_id": str(i), "attempt": a} for i, a in held]
            conn.execute("select count(*) from public.heartbeat_runs(%s, %s)", [name, Jsonb(batch)])

    seen: dict[str, list[int]] = {rid: [] for rid in ids}

    def reader(conn: psycopg.Connection[Any], rng: random.Random) -> None:
        rid = rng.choice(ids)
        after = seen[rid][-1] if seen[rid] else 0
        rows = conn.execute(
            "select seq from public.list_run_events(%s, %s, 1000)", [rid, after]
        ).fetchall()
        seen[rid].extend(r[0] for r in rows)

    stop = threading.Event()
    errors: list[BaseException] = []
    threads = [
        _loop(db_url, stop, errors, worker("w1")),
        _loop(db_url, stop, errors, worker("w2")),
        _loop(db_url, stop, errors, appender),
        _loop(db_url, stop, errors, appender),
        _loop(db_url, stop, errors, expirer),
        _loop(db_url, stop, errors, heartbeater),
        _loop(db_url, stop, errors, reader),
    ]
    for t in threads:
        t.start()
    time.sleep(SECONDS)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors

    with psycopg.connect(db_url, autocommit=True) as conn:
        # Cancel every run, from whatever state it is in: one more writer per run.
        for rid in ids:
            try:
                conn.execute("select public.cancel_run(%s, 'end of storm')", [rid])
            except psycopg.Error as e:
                assert e.sqlstate == "PO411", e  # already finished: not an error here
        rows = conn.execute(
            "select run_id::text, array_agg(seq order by seq), array_agg(kind order by seq)"
            " from public.run_events group by run_id"
        ).fetchall()
    by_run = {rid: (seqs, kinds) for rid, seqs, kinds in rows}
    kinds = {k for _, ks in by_run.values() for k in ks}
    assert {"claimed", "log", "retry_scheduled", "swept"} <= kinds, kinds
    for rid in ids:
        seqs, _ = by_run[rid]
        assert seqs == list(range(1, len(seqs) + 1)), f"run {rid}: seqs {seqs}"
        # What the reader saw by following after_seq is a prefix of the final sequence: an
        # event that committed later with a lower seq would show up here as a gap.
        assert seen[rid] == seqs[: len(seen[rid])], f"run {rid}: read {seen[rid]} of {seqs}"
    assert sum(len(s) for s in seen.values()) > RUNS, "the reader followed the runs"
