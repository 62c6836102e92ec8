"""The run guard's rules hold for every UPDATE, and cost the hot paths no function call.

The rules (supabase/schemas/20_state_machine.sql) live in the WHEN clauses of three row
triggers on ``runs``. A WHEN clause is evaluated without calling a function, so claim,
complete and sweep, which make only legal moves and stamp version/updated_at themselves, must
never reach the trigger functions; ``track_functions`` counts every call to prove it.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

TRIGGER_FUNCTIONS = ("runs_refuse", "runs_stamp")


def calls(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Calls of the guard's trigger functions in this transaction so far."""
    rows = conn.execute(
        "select funcname::text, calls from pg_stat_xact_user_functions"
        " where schemaname = 'pulser_ops' and funcname = any(%s)",
        (list(TRIGGER_FUNCTIONS),),
    ).fetchall()
    return {name: int(n) for name, n in rows}


def test_claim_complete_and_sweep_call_no_trigger_function(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("set track_functions = 'pl'")
        conn.execute(
            """select public.upsert_template('{"name": "guarded", "max_attempts": 3,
                 "retry_backoff_seconds": 0, "retry_jitter": 0}')"""
        )
        conn.execute(
            "select public.enqueue_runs(jsonb_agg(jsonb_build_object('template', 'guarded')))"
            " from generate_series(1, 4)"
        )
        claimed = conn.execute(
            "select id, attempt from public.claim_runs('w-1', '{A}', 4, 30) order by id"
        ).fetchall()
        assert len(claimed) == 4
        (ok,) = conn.execute(
            """select count(*) filter (where ok) from public.complete_runs('w-1', jsonb_build_array(
                 jsonb_build_object('run_id', %s::uuid, 'attempt', 1, 'status', 'succeeded'),
                 jsonb_build_object('run_id', %s::uuid, 'attempt', 1, 'status', 'failed')))""",
            (claimed[0][0], claimed[1][0]),
        ).fetchone() or (0,)
        assert ok == 2
        conn.execute(
            "update public.runs set lease_expires_at = now() - interval '1 minute',"
            " version = version + 1, updated_at = now() where id = any(%s)",
            ([claimed[2][0], claimed[3][0]],),
        )
        swept = conn.execute("select count(*) from public.sweep_expired_runs(10)").fetchone()
        assert swept == (2,)

        assert calls(conn) == {}, "a hot path called a trigger function of the run guard"

        # Control: an UPDATE that does not stamp itself goes through runs_stamp (counted).
        conn.execute("update public.runs set priority = 5 where id = %s", (claimed[2][0],))
        assert calls(conn) == {"runs_stamp": 1}


@pytest.mark.parametrize(
    ("move", "sqlstate", "message"),
    [
        (
            "status = 'succeeded', finished_at = now()",
            "PO400",
            "cannot go from queued to succeeded",
        ),
        ("status = 'failed', finished_at = now()", "PO400", "cannot go from queued to failed"),
    ],
)
def test_an_illegal_move_is_refused_even_by_a_direct_update(
    db_url: str, move: str, sqlstate: str, message: str
) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("""select public.upsert_template('{"name": "guarded"}')""")
        row = conn.execute("select id from public.enqueue_run('guarded')").fetchone()
        assert row is not None
        with pytest.raises(psycopg.Error) as err:
            conn.execute(f"update public.runs set {move} where id = %s", row)
    assert err.value.sqlstate == sqlstate
    assert message in str(err.value)


def test_a_finished_run_is_refused_as_finished_before_its_move_is_judged(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("""select public.upsert_template('{"name": "guarded"}')""")
        row = conn.execute("select id from public.enqueue_run('guarded')").fetchone()
        assert row is not None
        conn.execute("select public.cancel_run(%s)", row)
        with pytest.raises(psycopg.Error) as err:
            # cancelled -> succeeded is also no legal move: the finished rule answers first.
            conn.execute("update public.runs set status = 'succeeded' where id = %s", row)
    assert err.value.sqlstate == "PO411"
    assert "is already cancelled and cannot change" in str(err.value)


def test_an_update_that_does_not_stamp_itself_is_stamped(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("""select public.upsert_template('{"name": "guarded"}')""")
        row = conn.execute("select id, version from public.enqueue_run('guarded')").fetchone()
        assert row is not None
        with conn.transaction():
            conn.execute("update public.runs set priority = 7, version = 99 where id = %s", row[:1])
            after = conn.execute(
                "select version, updated_at = now() from public.runs where id = %s", row[:1]
            ).fetchone()
    assert after == (row[1] + 1, True)
