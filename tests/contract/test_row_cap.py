"""Calls whose results exceed the Supabase API's row cap (PostgREST ``max_rows``: 1000, which the
stand-in applies as the real service does: the function runs in full, only the reply is cut).

Every row the SQL touched must be accounted for, on both transports: a create of 1,100 runs
returns 1,100 runs, a prune of 1,100 runs removes the files of all of them, a catch-up sees every
changed run. Over PostgreSQL there is no cap; the same assertions hold.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from pulser_ops import Client, InvalidParams, Run, calls
from pulser_ops.subscribe import subscribe
from tests.contract.conftest import Env
from tests.contract.helpers import template
from tests.contract.subs import Collector, run_versions
from tests.support.standins import wait_until_decoded

#: Longer than any test: the catch-up must find every run, not a later watchdog catch-up.
NO_WATCHDOG = 3600.0

#: Over the stand-in's (and Supabase's default) cap of 1000.
N = 1100


def _create(client: Client, n: int = N, **extra: object) -> list[Run]:
    return client.runs.create_many(
        [{"template": "hello", "params": {"name": str(i)}, "lane": "D", **extra} for i in range(n)]
    )


def test_create_many_over_the_cap_returns_every_run(env: Env, client: Client) -> None:
    template(client)
    runs = _create(client)
    assert len(runs) == N
    assert [r.params["name"] for r in runs] == [str(i) for i in range(N)]  # input order kept
    assert env.sql("select count(*) from public.runs") == [(N,)]
    got = client.runs.get_many([r.id for r in runs])
    assert sorted(str(r.id) for r in got) == sorted(str(r.id) for r in runs)
    assert [(r.created_at, r.id) for r in got] == sorted((r.created_at, r.id) for r in got)


#: Runs of ``_finished_with_files`` that have a file: whatever 100 rows of an 1,100-row reply a
#: cap cuts off, some of these are among them (all but certainly: (950/1100)^100 < 1e-6).
WITH_FILES = 150


def _finished_with_files(client: Client) -> list[Run]:
    """N finished runs, the last WITH_FILES of them with a file in Storage (or local files)."""
    template(client, lease_seconds=300)
    _create(client)
    held = client.runs.claim("w1", lanes=["D"], limit=1000)
    held += client.runs.claim("w1", lanes=["D"], limit=1000)
    assert len(held) == N
    for r in held[-WITH_FILES:]:
        client.artifacts.put(r.id, "out/blob.bin", b"\x00" * 600, attempt=r.attempt)
    for part in (held[:1000], held[1000:]):  # complete_runs takes at most 1000 runs a call
        client.runs.complete_many(
            "w1", [{"run_id": r.id, "attempt": r.attempt, "status": "succeeded"} for r in part]
        )
    return held


def _no_files_left(env: Env) -> None:
    state = env.state()
    assert state["public.artifacts"] == []
    assert state["storage.objects"] == [] and state["files"] == []


def test_prune_over_the_cap_removes_every_file(env: Env, client: Client) -> None:
    _finished_with_files(client)
    assert client.runs.prune(0, batch=5000) == N
    assert env.sql("select count(*) from public.runs") == [(0,)]
    _no_files_left(env)


def test_delete_over_the_cap_removes_every_file(env: Env, client: Client) -> None:
    runs = _finished_with_files(client)
    assert client.runs.delete([r.id for r in runs]) == N
    assert env.sql("select count(*) from public.runs") == [(0,)]
    _no_files_left(env)


@pytest.mark.slow
async def test_catch_up_sees_every_changed_run(env: Env, client: Client) -> None:
    template(client)
    runs = _create(client)
    if env.sb is not None:  # nothing left for Realtime to push: only the catch-up can tell
        await asyncio.to_thread(wait_until_decoded, env.db_url)
    since = datetime.now(UTC) - timedelta(minutes=5)
    async with env.aclient() as ac:
        got = Collector(subscribe(ac, runs=True, since=since, watchdog_seconds=NO_WATCHDOG))
        try:
            await got.until(lambda xs: len({str(c.run.id) for c in xs if c.run}) >= N,
                            f"all {N} runs")
        finally:
            await got.close()
    assert all(run_versions(got.items, r.id) == [r.version] for r in runs)


def test_a_failing_part_of_a_split_create_says_what_was_committed(
    env: Env, client: Client
) -> None:
    """Over the API a create of more runs than the cap is sent in parts, each atomic; a part
    that fails leaves the earlier ones, and the error says so (over PostgreSQL: nothing)."""
    template(client)
    requests = [{"template": "hello", "params": {"name": str(i)}} for i in range(N)]
    requests[-1]["params"] = {"name": 5}  # invalid: only the last part fails
    with pytest.raises(InvalidParams) as err:
        client.runs.create_many(requests)
    [(n,)] = env.sql("select count(*) from public.runs")
    if env.kind == "supabase":
        assert n == 1000
        assert "earlier parts of this enqueue_runs call were committed: 1000 row(s)" in str(
            err.value)
    else:
        assert n == 0


def test_keyset_catch_up_reads_runs_changed_in_one_transaction(env: Env, client: Client) -> None:
    """1,100 runs changed in one statement share ``updated_at``: the catch-up's pages are told
    apart by id, not by time (a page per timestamp would loop on the first 1000)."""
    template(client)
    runs = _create(client, 1000)  # one transaction (one part), one timestamp
    runs += _create(client, 100)
    assert len({r.updated_at for r in runs[:1000]}) == 1
    got = client.transport.execute(
        calls.runs_changed_since(runs[0].updated_at - timedelta(seconds=1), None, 5000)
    )
    assert [r.id for r in got] == [r.id for r in sorted(runs, key=lambda r: (r.updated_at, r.id))]
