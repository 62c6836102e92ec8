"""Fresh databases for tests: empty ones, and copies of a migrated template.

Why a template: bootstrap + migrations take hundreds of milliseconds, while
``CREATE DATABASE x TEMPLATE tpl`` is a file copy, so every test can own a
pristine migrated database without sharing state with other tests.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

from pulser_ops.db.migrate import push
from tests.support.pgcluster import PgCluster

_counter = itertools.count(1)


def unique_name(prefix: str) -> str:
    """Database name unique within this test process (xdist workers own their cluster)."""
    return f"{prefix}_{os.getpid()}_{next(_counter)}"


@dataclass(frozen=True)
class MigratedTemplate:
    """A database with bootstrap + all migrations applied; never connect to it in tests
    (``CREATE DATABASE ... TEMPLATE`` fails while it has connections)."""

    cluster: PgCluster
    name: str

    def clone(self, prefix: str = "t") -> str:
        """Create a fresh copy and return its URL."""
        return self.cluster.create_database(unique_name(prefix), template=self.name)


def build_migrated_template(
    cluster: PgCluster, *, migrations_dir: Path | None = None, name: str = "pulser_tpl"
) -> MigratedTemplate:
    """Create ``name`` and push the shipped (or given) migrations into it, without seed."""
    url = cluster.create_database(name)
    push(url, migrations_dir=migrations_dir)
    return MigratedTemplate(cluster=cluster, name=name)
