"""What every benchmark gets: the databases, the sizes for this run, a scratch directory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from common import child_env, spawn, wait_all, wait_for
from setup_env import Databases


@dataclass
class Sizes:
    reps: int
    enqueue_single: int
    enqueue_batched: int
    drain_runs: int
    drain_procs: int
    steps_runs: int
    pickup_runs: int
    pickup_gap: float
    depths: tuple[int, ...]
    depth_samples: int
    sweep_runs: int
    realtime_changes: int
    idle_window: float

    @classmethod
    def full(cls) -> Sizes:
        return cls(
            reps=3,
            enqueue_single=2000,
            enqueue_batched=10_000,
            drain_runs=10_000,
            drain_procs=4,
            steps_runs=5_000,
            pickup_runs=200,
            pickup_gap=0.02,
            depths=(1_000, 100_000, 1_000_000),
            depth_samples=300,
            sweep_runs=10_000,
            realtime_changes=200,
            idle_window=10.0,
        )

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            reps=3,
            enqueue_single=200,
            enqueue_batched=2_000,
            drain_runs=1_000,
            drain_procs=4,
            steps_runs=500,
            pickup_runs=40,
            pickup_gap=0.02,
            depths=(1_000, 20_000),
            depth_samples=60,
            sweep_runs=2_000,
            realtime_changes=40,
            idle_window=3.0,
        )


@dataclass
class Ctx:
    dbs: Databases
    sizes: Sizes
    scratch: Path
    use_worker: bool

    def settle(self) -> None:
        """Write out every dirty buffer (CHECKPOINT) before a timed measurement.

        So that every system starts from the same state: no one pays for the pages the
        system measured before it wrote, nor for its own fill."""
        with psycopg.connect(self.dbs.server.admin_url, autocommit=True) as conn:
            conn.execute("checkpoint")

    def path(self, name: str) -> Path:
        p = self.scratch / name
        p.unlink(missing_ok=True)
        return p

    def run_gated(self, name: str, count: int, command: Callable[[str, str], list[str]]) -> None:
        """``count`` processes of ``command(ready, go)``, started together (the gate, gate.py:
        each says it is ready, then waits for ``go``); returns when every one has exited."""
        go = self.path(f"{name}.go")
        ready = [self.path(f"{name}-{i}.ready") for i in range(count)]
        procs = [spawn(command(str(r), str(go)), child_env()) for r in ready]
        try:
            wait_for(lambda: all(r.exists() for r in ready), 120, f"{name} to start")
        finally:
            go.touch()
        wait_all(procs, timeout=900)
