"""Shared pieces of the benchmarks: measurements, percentiles, subprocess helpers.

Why one small module: every benchmark reports the same shape (a metric measured over
repetitions, with an optional target), so the runner can print one table for all of them.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PULSER_PY = str(REPO / ".venv" / "bin" / "python")
PEERS_VENV = BENCH_DIR / ".venv-peers"
PEERS_PY = str(PEERS_VENV / "bin" / "python")


@dataclass
class Target:
    """A goal for the median of a measurement: ``value <op> limit``."""

    op: str  # "<=", "<", ">="
    limit: float
    text: str

    def met(self, value: float) -> bool:
        if self.op == "<=":
            return value <= self.limit
        if self.op == "<":
            return value < self.limit
        return value >= self.limit


@dataclass
class Measurement:
    """One row of the result table: a metric of one system over several repetitions."""

    bench: str
    system: str
    metric: str
    unit: str
    values: list[float] = field(default_factory=list)
    target: Target | None = None
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def status(self) -> str:
        if self.target is None or not self.values:
            return ""
        return "met" if self.target.met(self.median) else "MISSED"


def ratio(
    bench: str, system: str, ours: Measurement, theirs: Measurement, target: Target | None
) -> Measurement:
    """``ours / theirs``, repetition by repetition (both ran in the same repetition, under the
    same load), as a row of its own."""
    values = [a / b for a, b in zip(ours.values, theirs.values, strict=True)]
    return Measurement(bench, system, f"{ours.system} / {theirs.system}", "x", values, target)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); exact for the sample, no interpolation."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_checked(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    cwd: Path | None = None,
) -> str:
    """Run a command, raise with its output if it fails; returns stdout."""
    res = subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd, check=False
    )
    if res.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
        )
    return res.stdout


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSER_OPS_")}
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + str(REPO)
    env.update(extra or {})
    return env


def spawn(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cmd, env=env or child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_all(procs: list[subprocess.Popen[str]], timeout: float) -> None:
    """Wait for every process; kill the rest and raise if one fails or time runs out."""
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            left = max(0.1, deadline - time.monotonic())
            out, err = p.communicate(timeout=left)
            if p.returncode != 0:
                raise RuntimeError(f"{p.args} exited {p.returncode}:\n{out}\n{err[-4000:]}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)


def read_json_lines(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
