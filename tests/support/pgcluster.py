"""Throwaway PostgreSQL clusters for the test session.

Why a real cluster per session (not per test): initdb costs ~1s, while
``CREATE DATABASE ... TEMPLATE`` costs a few milliseconds, so each test gets a
fresh database cloned from a template that was migrated once.

The cluster listens on 127.0.0.1 only, on a free port, with password auth for
TCP, so every DSN looks like a real Supabase DSN
(``postgresql://postgres:postgres@127.0.0.1:PORT/db``) and also works for the
Supabase CLI and ``pg_prove``, which connect over TCP.

PostgreSQL refuses to run as root, so when the tests run as root every server
binary is started through ``runuser -u postgres --``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

SUPERUSER = "postgres"
PASSWORD = "postgres"
HOST = "127.0.0.1"
DEFAULT_BIN_DIRS = ("/usr/lib/postgresql/15/bin",)

#: Server settings for tests. Durability is off because data is throwaway;
#: logical replication and pg_cron mirror what a Supabase database offers.
TEST_SETTINGS: dict[str, str] = {
    "listen_addresses": f"'{HOST}'",
    "wal_level": "logical",
    "max_replication_slots": "10",
    "max_wal_senders": "10",
    "shared_preload_libraries": "'pg_cron'",
    "cron.database_name": "'postgres'",
    "max_connections": "300",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "log_min_messages": "warning",
    "log_min_error_statement": "panic",
}


class ClusterError(RuntimeError):
    """The test cluster could not be created or started (message includes the server log)."""


def find_bin_dir() -> Path:
    """Locate the PostgreSQL server binaries.

    ``PULSER_OPS_TEST_PG_BIN`` wins; then a directory that actually holds
    ``initdb`` (``pg_config --bindir`` on Debian points at /usr/bin, which only has
    wrappers); then the Debian PostgreSQL 15 location.
    """
    override = os.environ.get("PULSER_OPS_TEST_PG_BIN")
    candidates: list[str] = [override] if override else []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            out = subprocess.run(
                [pg_config, "--bindir"], check=True, capture_output=True, text=True
            ).stdout.strip()
            candidates.append(out)
    candidates.extend(DEFAULT_BIN_DIRS)
    for cand in candidates:
        if cand and (Path(cand) / "initdb").is_file() and (Path(cand) / "pg_ctl").is_file():
            return Path(cand)
    raise ClusterError(
        f"no PostgreSQL server binaries found (tried {candidates}); set PULSER_OPS_TEST_PG_BIN"
    )


def free_port() -> int:
    """Ask the kernel for a free TCP port on the loopback address."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _run_as_prefix() -> list[str]:
    """Command prefix so server binaries never run as root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"]
    return []


@dataclass
class PgCluster:
    """A running throwaway cluster; use :func:`start_cluster` to create one."""

    bin_dir: Path
    base_dir: Path
    port: int
    _started: bool = field(default=False, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "server.log"

    def url(self, dbname: str = "postgres") -> str:
        """DSN of a database in this cluster, as the ``postgres`` superuser."""
        return f"postgresql://{SUPERUSER}:{PASSWORD}@{HOST}:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """Autocommit superuser connection (needed for CREATE/DROP DATABASE)."""
        return psycopg.connect(self.url(dbname), autocommit=True)

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create a database (optionally as a copy of ``template``); returns its URL."""
        query = sql.SQL("create database {}").format(sql.Identifier(name))
        if template is not None:
            query = sql.SQL("create database {} template {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        with self.connect() as conn:
            conn.execute(query)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, kicking out leftover connections (tests may leak some).

        ``with (force)`` refuses a database that a logical replication slot is active in (the
        stand-in's Realtime feed, whose backend may still be inside
        ``pg_logical_slot_get_changes`` when its connection was closed), so the sessions that
        hold slots there are ended first and their (temporary) slots waited out."""
        with self.connect() as conn:
            deadline = time.monotonic() + 10
            while True:
                active = conn.execute(
                    "select pg_terminate_backend(active_pid) from pg_replication_slots"
                    " where database = %s and active_pid is not null", (name,)
                ).fetchall()  # fmt: skip
                conn.execute(
                    "select pg_drop_replication_slot(slot_name) from pg_replication_slots"
                    " where database = %s and not active and not temporary", (name,)
                )  # fmt: skip
                left = conn.execute(
                    "select count(*) from pg_replication_slots where database = %s", (name,)
                ).fetchone()  # fmt: skip
                if (not active and not (left and left[0])) or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )

    def server_log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def _pg(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*_run_as_prefix(), *args], capture_output=True, text=True, check=False
        )

    def _init(self) -> None:
        pwfile = self.base_dir / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        self._chown(pwfile)
        res = self._pg(
            str(self.bin_dir / "initdb"),
            "-D", str(self.data_dir),
            "-U", SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )  # fmt: skip
        if res.returncode != 0:
            raise ClusterError(f"initdb failed:\n{res.stdout}\n{res.stderr}")
        pwfile.unlink()

    def _write_config(self) -> None:
        settings = {
            **TEST_SETTINGS,
            "port": str(self.port),
            "unix_socket_directories": f"'{self.base_dir}'",
        }
        lines = "".join(f"{k} = {v}\n" for k, v in settings.items())
        conf = self.data_dir / "postgresql.conf"
        with conf.open("a") as fh:
            fh.write("\n# pulser-ops test settings\n" + lines)

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, user="postgres", group="postgres")

    def start(self) -> None:
        self.log_file.touch()
        self._chown(self.log_file)
        res = self._pg(
            str(self.bin_dir / "pg_ctl"),
            "-D", str(self.data_dir),
            "-l", str(self.log_file),
            "-w", "-t", "60",
            "start",
        )  # fmt: skip
        if res.returncode != 0:
            raise ClusterError(
                f"pg_ctl start failed on port {self.port}:\n{res.stdout}\n{res.stderr}\n"
                f"--- server log ---\n{self.server_log()}"
            )
        self._started = True

    def restart(self, down_seconds: float = 2.0) -> None:
        """Crash-stop the server (immediate mode: clients see their connections die), stay down
        for ``down_seconds``, then start it again with its data."""
        res = self._pg(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate",
                       "-w", "stop")  # fmt: skip
        if res.returncode != 0:
            raise ClusterError(f"pg_ctl stop failed:\n{res.stdout}\n{res.stderr}")
        time.sleep(down_seconds)
        self.start()

    def stop(self) -> None:
        """Stop the server (immediate: data is throwaway) and delete its files."""
        if self._started:
            self._pg(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate",
                     "-w", "stop")  # fmt: skip
            self._started = False
        shutil.rmtree(self.base_dir, ignore_errors=True)


def start_cluster(bin_dir: Path | None = None, attempts: int = 3) -> PgCluster:
    """initdb + start a cluster on a free port, retrying if another process grabs the port."""
    bin_dir = bin_dir or find_bin_dir()
    base = Path(tempfile.mkdtemp(prefix="pulser-ops-pg-"))
    os.chmod(base, 0o755)
    if os.geteuid() == 0:
        shutil.chown(base, user="postgres", group="postgres")
    cluster = PgCluster(bin_dir=bin_dir, base_dir=base, port=free_port())
    try:
        cluster._init()
        last: ClusterError | None = None
        for _ in range(attempts):
            cluster.port = free_port()
            cluster._write_config()
            try:
                cluster.start()
                # Safety net if the session dies before its fixture finalizer runs.
                atexit.register(cluster.stop)
                return cluster
            except ClusterError as exc:  # port raced away: pick another one
                last = exc
        assert last is not None
        raise last
    except BaseException:
        cluster.stop()
        raise
