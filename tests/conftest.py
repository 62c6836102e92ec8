"""Shared pytest fixtures.

Database fixtures: one throwaway PostgreSQL 15 cluster per test session (per
xdist worker), a template database migrated once, and per-test fresh databases.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.databases import MigratedTemplate, build_migrated_template, unique_name
from tests.support.pgcluster import PgCluster, start_cluster


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
