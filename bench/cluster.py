"""The benchmark database: a throwaway PostgreSQL 15 cluster, or an existing server (--dsn).

Why its own settings instead of the test cluster's: tests turn fsync off, which would make
every commit free and flatter everyone. Here fsync stays on (crash-safe) and only
``synchronous_commit`` is off by default (a crash may lose the last few hundred ms of
commits, never corrupt), a common setting for queue databases; ``--durable`` turns it on.
Every system runs on the same cluster with the same settings, in a fresh database each.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from common import REPO

sys.path.insert(0, str(REPO))
from tests.support.pgcluster import PgCluster, find_bin_dir, free_port

BENCH_SETTINGS: dict[str, str] = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    "shared_buffers": "'1GB'",
    "work_mem": "'16MB'",
    "maintenance_work_mem": "'256MB'",
    "max_wal_size": "'8GB'",
    "checkpoint_timeout": "'30min'",
    "synchronous_commit": "off",
    "shared_preload_libraries": "'pg_stat_statements'",
    "pg_stat_statements.track": "top",
    "jit": "off",
    "log_min_messages": "warning",
    "log_min_error_statement": "panic",
}


class BenchCluster(PgCluster):
    """A ``PgCluster`` with the benchmark settings instead of the test ones."""

    durable: bool = False

    def _write_config(self) -> None:
        settings = {
            **BENCH_SETTINGS,
            "port": str(self.port),
            "unix_socket_directories": f"'{self.base_dir}'",
        }
        if self.durable:
            settings["synchronous_commit"] = "on"
        lines = "".join(f"{k} = {v}\n" for k, v in settings.items())
        with (self.data_dir / "postgresql.conf").open("a") as fh:
            fh.write("\n# pulser-ops benchmark settings\n" + lines)


def start_bench_cluster(durable: bool, kind: type[BenchCluster] = BenchCluster) -> BenchCluster:
    """A started throwaway cluster of ``kind`` (a ``BenchCluster`` subclass may add settings)."""
    base = Path(tempfile.mkdtemp(prefix="pulser-ops-bench-"))
    os.chmod(base, 0o755)
    if os.geteuid() == 0:
        shutil.chown(base, user="postgres", group="postgres")
    cluster = kind(bin_dir=find_bin_dir(), base_dir=base, port=free_port())
    cluster.durable = durable
    try:
        cluster._init()
        cluster._write_config()
        cluster.start()
        return cluster
    except BaseException:
        cluster.stop()
        raise


@dataclass
class Server:
    """Where the benchmark databases live: ``admin_url`` must be a superuser."""

    admin_url: str
    cluster: BenchCluster | None = None

    def url(self, dbname: str) -> str:
        parts = urlsplit(self.admin_url)
        return urlunsplit(parts._replace(path="/" + dbname))

    def create_database(self, name: str, template: str | None = None) -> str:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )
            q = sql.SQL("create database {}").format(sql.Identifier(name))
            if template:
                q = sql.SQL("create database {} template {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            conn.execute(q)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()


def open_server(dsn: str | None, durable: bool) -> Server:
    if dsn:
        return Server(admin_url=dsn)
    cluster = start_bench_cluster(durable)
    return Server(admin_url=cluster.url("postgres"), cluster=cluster)
