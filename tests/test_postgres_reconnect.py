"""The direct transport after its connections died: a restart or a terminated backend leaves
dead connections in the pool, and no call may be lost to one. Calls that are sent only once
(a claim, a release) show it best: they must go out on a live connection the first time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import pulser_ops
from pulser_ops import Client
from pulser_ops.transport.postgres import PostgresTransport
from tests.contract.helpers import template
from tests.support.pgcluster import PgCluster

POOL = 4


@pytest.fixture
def client(durable_commits: str, db_url: str, tmp_path: Path) -> Iterator[Client]:
    """A client whose pool holds POOL open connections from the start."""
    with pulser_ops.connect(db_url, storage_dir=tmp_path) as base:
        transport = PostgresTransport(db_url, base.transport.files, min_size=POOL, max_size=POOL)
        c = Client(transport)
        try:
            yield c
        finally:
            transport._pool.close()


def _pool_pids(db_url: str) -> list[int]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            "select pid from pg_stat_activity where datname = current_database()"
            " and application_name = 'pulser-ops' and pid <> pg_backend_pid()"
        ).fetchall()
    return [int(pid) for (pid,) in rows]


def test_a_call_never_goes_out_on_a_connection_the_server_closed(
    client: Client, db_url: str
) -> None:
    template(client)
    run = client.runs.create("hello", {"name": "x"})
    pids = _pool_pids(db_url)
    assert len(pids) >= POOL
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute("select pg_terminate_backend(pid) from unnest(%s::int[]) pid", (pids,))
    deadline = time.monotonic() + 10
    while set(pids) & set(_pool_pids(db_url)) and time.monotonic() < deadline:
        time.sleep(0.02)
    # Sent once (a claim is not safe to repeat): on a dead connection it would fail.
    [claimed] = client.runs.claim("w1", lanes=["A"])
    assert (claimed.id, claimed.status) == (run.id, "running")
    assert client.runs.release(run.id, "w1", 1).status == "queued"


def test_calls_after_a_crash_restart_wait_for_a_live_connection(
    client: Client, db_url: str, tmp_path: Path, pg_cluster: PgCluster
) -> None:
    template(client)
    run = client.runs.create("hello", {"name": "x"})
    pg_cluster.restart(down_seconds=0.3)
    [claimed] = client.runs.claim("w1", lanes=["A"])
    assert claimed.id == run.id
    pg_cluster.restart(down_seconds=0.3)
    [beat] = client.runs.heartbeat_many("w1", [(run.id, 1)])
    assert beat.ok
    assert client.runs.release(run.id, "w1", 1).status == "queued"


async def test_the_async_transport_too(
    durable_commits: str, db_url: str, tmp_path: Path, pg_cluster: PgCluster
) -> None:
    async with await pulser_ops.aconnect(db_url, storage_dir=tmp_path) as client:
        await client.templates.upsert(
            {"name": "hello", "params_schema": {"type": "object"}, "steps": [],
             "default_lane": "A"}
        )
        run = await client.runs.create("hello")
        pg_cluster.restart(down_seconds=0.3)
        [claimed] = await client.runs.claim("w1", lanes=["A"])
        assert claimed.id == run.id
        assert (await client.runs.release(run.id, "w1", 1)).status == "queued"
