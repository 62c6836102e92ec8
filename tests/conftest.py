"""Shared pytest fixtures.

Database fixtures: one throwaway PostgreSQL 15 cluster per test session (per
xdist worker), a template database migrated once, and per-test fresh databases.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tests.support.databases import MigratedTemplate, build_migrated_template, unique_name
from tests.support.pgcluster import PgCluster, start_cluster


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record-mode",
        choices=["once", "new_episodes", "none", "all"],
        default=None,
        help="tests/live: record missing cassettes against SUPABASE_URL (docs/SUPABASE.md)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave the live suite out unless asked for: ``-m live`` or ``tests/live`` named."""
    asked = "live" in (config.getoption("markexpr") or "") or any(
        "tests/live" in str(a).replace("\\", "/") for a in config.args
    )
    if asked:
        return
    live = [i for i in items if i.get_closest_marker("live")]
    if live:
        config.hook.pytest_deselected(items=live)
        items[:] = [i for i in items if not i.get_closest_marker("live")]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A running cluster (logical WAL, pg_cron preloaded) on a free 127.0.0.1 port."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def migrated_template(pg_cluster: PgCluster) -> MigratedTemplate:
    """Bootstrap + shipped migrations applied once; clone it with ``.clone()``."""
    return build_migrated_template(pg_cluster)


@pytest.fixture
def db_url(migrated_template: MigratedTemplate) -> Iterator[str]:
    """URL of a fresh, fully migrated database owned by this test."""
    url = migrated_template.clone()
    try:
        yield url
    finally:
        migrated_template.cluster.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture
def empty_db_url(pg_cluster: PgCluster) -> Iterator[str]:
    """URL of a fresh, empty database (no bootstrap, no migrations)."""
    name = unique_name("e")
    url = pg_cluster.create_database(name)
    try:
        yield url
    finally:
        pg_cluster.drop_database(name)


@pytest.fixture
def durable_commits(db_url: str) -> str:
    """``db_url``, with commits that survive a crash (for tests that restart the server).

    The test cluster runs with ``synchronous_commit = off`` for speed: a crash then forgets the
    last commits it had acknowledged, and a run the database said was complete would be running
    again. That is the server breaking its word, which no client could repair, so sessions of
    this database (opened after this fixture: request it first) wait for the WAL flush."""
    name = db_url.rsplit("/", 1)[1]
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("alter database {} set synchronous_commit = on").format(sql.Identifier(name))
        )
    return db_url
