"""One-time setup inside a benchmark run: the peers' virtualenv and the template databases.

Why a separate virtualenv for the peers: procrastinate and pgqueuer pin their own versions of
psycopg/asyncpg, and must not change what pulser-ops is measured with. Why templates: every
repetition gets a fresh database (``CREATE DATABASE ... TEMPLATE`` is a file copy), so no
run inherits another's dead tuples or bloated indexes.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from cluster import Server
from common import BENCH_DIR, PEERS_PY, PEERS_VENV, child_env, log, run_checked

#: How an experiment's system is named: "pulser:" + the stem of its last SQL file.
EXPERIMENT = "pulser:"


def experiment_name(system: str) -> str:
    """An experiment system's name: "lean_recording" for "pulser:lean_recording"."""
    return system.removeprefix(EXPERIMENT)


PEER_PACKAGES = ["procrastinate", "pgqueuer", "asyncpg", "psycopg[binary]", "psycopg-pool"]


def ensure_peers_venv() -> None:
    """Create bench/.venv-peers and pip-install the peers once (from PyPI)."""
    if Path(PEERS_PY).exists():
        probe = subprocess.run(
            [PEERS_PY, "-c", "import procrastinate, pgqueuer, asyncpg"],
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return
    log(f"creating {PEERS_VENV} and installing {' '.join(PEER_PACKAGES)}")
    run_checked([sys.executable, "-m", "venv", str(PEERS_VENV)])
    run_checked([PEERS_PY, "-m", "pip", "install", "-q", *PEER_PACKAGES], timeout=900)


def peer_versions() -> dict[str, str]:
    code = (
        "import json, importlib.metadata as m; print(json.dumps({p: m.version(p) for p in "
        "['procrastinate', 'pgqueuer', 'asyncpg', 'psycopg']}))"
    )
    return dict(json.loads(run_checked([PEERS_PY, "-c", code])))


@dataclass
class Databases:
    """Templates per system and fresh copies of them."""

    server: Server
    #: ``--experiment`` values: each makes one more pulser-ops template, the shipped schema with
    #: its SQL files applied in order, measured beside the shipped one as "pulser:<last stem>".
    experiments: list[list[Path]] = field(default_factory=list)
    templates: dict[str, str] = field(default_factory=dict)
    _n: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _made: list[str] = field(default_factory=list)

    def build(self) -> None:
        from pulser_ops.db.migrate import push

        url = self.server.create_database("tpl_pulser")
        push(url, include_seed=True)
        self.templates["pulser"] = "tpl_pulser"
        for i, sql_files in enumerate(self.experiments):
            name = f"tpl_pulser_x{i}"
            self.server.create_database(name, template="tpl_pulser")
            with psycopg.connect(self.server.url(name), autocommit=True) as conn:
                for sql_file in sql_files:
                    conn.execute(sql_file.read_text())  # type: ignore[arg-type]
            self.templates[EXPERIMENT + sql_files[-1].stem] = name
        for system, script in (("pgqueuer", "pgq.py"), ("procrastinate", "proc.py")):
            name = f"tpl_{system}"
            url = self.server.create_database(name)
            run_checked(
                [PEERS_PY, str(BENCH_DIR / "peers" / script), "install", url], env=child_env()
            )
            self.templates[system] = name
        for url in [self.server.admin_url, *map(self.server.url, self.templates.values())]:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("create extension if not exists pg_stat_statements")

    def experiments_built(self) -> list[str]:
        """The systems of the ``--experiment`` templates ("pulser:<name>"), in order."""
        return [k for k in self.templates if k.startswith(EXPERIMENT)]

    def fresh(self, system: str) -> str:
        """A new database copied from the system's template; dropped at the end of the run."""
        self.cleanup(keep_last=0)
        name = f"b_{system.replace(':', '_')}_{next(self._n)}"
        self._made.append(name)
        return self.server.create_database(name, template=self.templates[system])

    def cleanup(self, keep_last: int = 0) -> None:
        while len(self._made) > keep_last:
            self.server.drop_database(self._made.pop(0))
