"""Fixtures for the worker tests: a client on a fresh database and real worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import pulser_ops
from pulser_ops import Client
from pulser_ops.worker import Worker, WorkerConfig

REPO = Path(__file__).resolve().parents[2]
PULSER_OPS = Path(sys.executable).parent / "pulser-ops"


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0, every: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy; fail (naming ``what``) after
    ``timeout``. The timeout only bounds a broken test, it is not what is asserted."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


@pytest.fixture
def storage_dir(tmp_path: Path) -> Path:
    d = tmp_path / "storage"
    d.mkdir()
    return d


@pytest.fixture
def client(db_url: str, storage_dir: Path) -> Iterator[Client]:
    c = pulser_ops.connect(db_url, storage_dir=storage_dir)
    try:
        yield c
    finally:
        c.close()


def burst_worker(client: Client, *, listen: bool = True, **kw: object) -> Worker:
    """An in-process worker on lane A that stops once the queue is empty (``run()`` returns)."""
    cfg = WorkerConfig(
        worker_id="test-worker",
        lanes=("A",),
        concurrency=2,
        poll_seconds=0.2,
        burst=True,
        handlers=("tests.worker.handlers",),
    )
    return Worker(client, config=cfg.with_overrides(**kw), listen=listen)


def template(name: str, steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "params_schema": {"type": "object"},
        "steps": steps,
        "default_lane": "A",
        "max_attempts": 1,
        **extra,
    }


class WorkerProcess:
    """``pulser-ops worker`` as a child process, its output in a log file."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path, worker_id: str) -> None:
        self.proc = proc
        self.log = log
        self.worker_id = worker_id

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"worker {self.worker_id} did not exit; output:\n{self.output()[-4000:]}"
            ) from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def spawn_worker(
    db_url: str, storage_dir: Path, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []
    exec_dir = tmp_path / "exec"
    exec_dir.mkdir(exist_ok=True)

    def spawn(
        *args: str, worker_id: str | None = None, env: Mapping[str, str] | None = None
    ) -> WorkerProcess:
        wid = worker_id or f"w{len(started)}"
        log = tmp_path / f"{wid}.log"
        full_env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("PULSER_OPS_", "SUPABASE_"))
            },
            "PULSER_OPS_DATABASE_URL": db_url,
            "PULSER_OPS_STORAGE_DIR": str(storage_dir),
            "PULSER_OPS_WORKER_ID": wid,
            "PULSER_TEST_EXEC_DIR": str(exec_dir),
            "PYTHONPATH": str(REPO),
            **(env or {}),
        }
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(PULSER_OPS), "worker", "--handlers", "tests.worker.handlers", *args],
                cwd=tmp_path,
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        w = WorkerProcess(proc, log, wid)
        started.append(w)
        return w

    spawn.exec_dir = exec_dir  # type: ignore[attr-defined]
    try:
        yield spawn
    finally:
        for w in started:
            w.kill()


@pytest.fixture
def exec_dir(spawn_worker: Any) -> Path:
    """Where the ``record`` handler of spawned workers writes one file per run."""
    return Path(spawn_worker.exec_dir)


Executions = dict[str, list[tuple[int, str, float, float]]]


def executions(exec_dir: Path) -> Executions:
    """run id → (attempt, worker, started, ended) per execution, from the files the ``record``
    handler (and the TypeScript examples' ``rec``, tests/typescript) write."""
    out: Executions = {}
    for f in exec_dir.iterdir():
        rows = []
        for line in f.read_text().splitlines():
            attempt, worker, started, ended = line.split()
            rows.append((int(attempt), worker, float(started), float(ended)))
        out[f.name] = rows
    return out
