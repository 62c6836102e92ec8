"""Supabase stand-ins for a test module: on a copy of the migrated template, or on a scratch
database with the bootstrap and a module's own objects."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from pulser_ops.resources import bootstrap_sql
from tests.standin import StandIn
from tests.support.databases import MigratedTemplate, unique_name
from tests.support.pgcluster import PgCluster


@contextmanager
def migrated_standin(
    template: MigratedTemplate, tmp: pytest.TempPathFactory, *, prefix: str, secret: str
) -> Iterator[StandIn]:
    """A stand-in on a fresh copy of the migrated control plane (dropped afterwards)."""
    url = template.clone(prefix=prefix)
    try:
        with StandIn(url, secret, tmp.mktemp(f"{prefix}-storage")) as sb:
            yield sb
    finally:
        template.cluster.drop_database(url.rsplit("/", 1)[1])


@contextmanager
def scratch_database(cluster: PgCluster, *, prefix: str, sql: str) -> Iterator[str]:
    """A database with the Supabase-shaped bootstrap and ``sql`` (no control plane)."""
    name = unique_name(prefix)
    url = cluster.create_database(name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(bootstrap_sql().encode())
        conn.execute(sql.encode())
    try:
        yield url
    finally:
        cluster.drop_database(name)


def wait_until_decoded(db_url: str) -> None:
    """Until the stand-in's logical slot has consumed everything committed so far."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute("select pg_current_wal_lsn()").fetchone()
        assert row is not None
        for _ in range(600):
            done = conn.execute(
                "select coalesce(bool_and(confirmed_flush_lsn >= %s::pg_lsn), false)"
                " from pg_replication_slots"
                " where slot_type = 'logical' and database = current_database()",
                (row[0],),
            ).fetchone()
            if done is not None and done[0]:
                return
            time.sleep(0.1)
    raise AssertionError("the Realtime feed never decoded the last changes")
