"""Fixtures for the TypeScript examples (examples/typescript): compiled once per test session,
run with Node against the stand-in (tests/standin) on a real, migrated PostgreSQL.

``scripts/test`` installs their npm packages from the lock file (``npm ci``). The examples are
compiled here into a directory of this session's own (two xdist workers must not write the same
files), next to a link to their ``node_modules``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from pulser_ops import Client
from tests.standin import StandIn
from tests.worker import conftest as worker_fixtures
from tests.worker.conftest import WorkerProcess

# The Python side of the cross-language tests: the worker tests' fixtures (a direct client on
# the test's database, ``pulser-ops worker`` processes, the directory ``record`` writes to).
client = worker_fixtures.client
exec_dir = worker_fixtures.exec_dir
spawn_worker = worker_fixtures.spawn_worker
storage_dir = worker_fixtures.storage_dir

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "typescript"
HANDLERS = Path(__file__).with_name("handlers.mjs")
SECRET = "typescript-examples-jwt-secret-with-32-bytes"


def _bin(name: str) -> Path:
    path = EXAMPLES / "node_modules" / ".bin" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/test (or `npm ci` in {EXAMPLES})")
    return path


@pytest.fixture(scope="session")
def ts_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The examples compiled to JavaScript (``tsc``: a type error fails every test here)."""
    root = tmp_path_factory.mktemp("ts-examples")
    shutil.copy(EXAMPLES / "package.json", root / "package.json")  # "type": "module"
    (root / "node_modules").symlink_to(EXAMPLES / "node_modules")
    out = root / "build"
    done = subprocess.run(
        [str(_bin("tsc")), "-p", str(EXAMPLES), "--outDir", str(out)],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"tsc failed:\n{done.stdout}{done.stderr}")
    return out


@pytest.fixture
def sb(db_url: str, storage_dir: Path) -> Iterator[StandIn]:
    with StandIn(db_url, SECRET, storage_dir) as standin:
        yield standin


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSER_OPS_", "SUPABASE_"))}
    env.update(extra)
    return env


class Node:
    """Runs the compiled examples with Node, as the service role unless told otherwise."""

    def __init__(self, build: Path, sb: StandIn, exec_dir: Path, logs: Path) -> None:
        self.build = build
        self.sb = sb
        self.exec_dir = exec_dir
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def env(self, token: str | None = None, **extra: str) -> dict[str, str]:
        keys = ({"SUPABASE_PUBLISHABLE_KEY": self.sb.anon_key, "PULSER_OPS_ACCESS_TOKEN": token}
                if token else {"SUPABASE_SERVICE_ROLE_KEY": self.sb.service_key})
        return base_env(SUPABASE_URL=self.sb.url, PULSER_TEST_EXEC_DIR=str(self.exec_dir),
                        **keys, **extra)

    def run(self, script: str, *args: str, token: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["node", str(self.build / f"{script}.js"), *args],
                              env=self.env(token), capture_output=True, text=True,
                              timeout=timeout, check=False)

    def enqueue(self, *args: str, token: str | None = None) -> dict[str, Any]:
        done = self.run("enqueue", *args, token=token)
        assert done.returncode == 0, done.stderr
        run: dict[str, Any] = json.loads(done.stdout)
        return run

    def spawn(self, script: str, *args: str, name: str, token: str | None = None,
              env: Mapping[str, str] | None = None) -> WorkerProcess:
        log = self.logs / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(["node", str(self.build / f"{script}.js"), *args],
                                    env={**self.env(token), **(env or {})},
                                    stdout=subprocess.PIPE if script == "watch" else out,
                                    stderr=out)
        self.started.append(proc)
        return WorkerProcess(proc, log, name)

    def worker(self, name: str, *, lanes: str = "A,B,C,D", concurrency: int = 2,
               burst: bool = False, **extra: str) -> WorkerProcess:
        env = {"PULSER_OPS_WORKER_ID": name, "PULSER_OPS_LANES": lanes,
               "PULSER_OPS_CONCURRENCY": str(concurrency), "PULSER_OPS_POLL_SECONDS": "0.2",
               "PULSER_OPS_BURST": "1" if burst else "0", "PULSER_HANDLERS": str(HANDLERS),
               **extra}
        return self.spawn("worker", name=name, env=env)


@pytest.fixture
def node(ts_build: Path, sb: StandIn, exec_dir: Path, tmp_path: Path) -> Iterator[Node]:
    n = Node(ts_build, sb, exec_dir, tmp_path)
    try:
        yield n
    finally:
        for proc in n.started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def rec_template(client: Client, **extra: Any) -> None:
    """``rec``: the TypeScript handler of that name and the Python ``record`` handler both write
    one line per execution to a file per run (the side effect the fleet tests count)."""
    client.templates.upsert({
        "name": "rec", "params_schema": {"type": "object"},
        "steps": [{"kind": "python", "name": "rec", "handler": "record"}],
        "default_lane": "A", "max_attempts": 3, "retry_backoff_seconds": 0,
        "retry_backoff_max_seconds": 0, **extra,
    })



