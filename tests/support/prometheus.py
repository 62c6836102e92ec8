"""A real Prometheus (Debian's ``prometheus`` package) for tests: started on a free loopback
port with a temporary configuration, queried through its HTTP API.

Outside CI a machine without it skips these tests with the reason; with ``CI=true`` a missing
binary fails them (``scripts/test`` installs the package)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml


def binary(name: str) -> str:
    """``prometheus`` or ``promtool``: on PATH, or a skip (a failure in CI) naming the fix."""
    found = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK)
                                   else None)  # fmt: skip
    if found is None:
        reason = f"{name} is not installed (apt-get install prometheus; scripts/test does)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Prometheus:
    url: str
    log: Path

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query: the result vector (labels and value of each series)."""
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = r.json()
        if body.get("status") != "success":
            raise AssertionError(f"query {expr!r} failed: {body}")
        return [
            {"labels": item["metric"], "value": float(item["value"][1])}
            for item in body["data"]["result"]
        ]

    def value(self, expr: str) -> float | None:
        found = self.query(expr)
        if not found:
            return None
        assert len(found) == 1, f"{expr!r} has {len(found)} series: {found}"
        return float(found[0]["value"])

    def targets_up(self) -> dict[str, str]:
        body = httpx.get(f"{self.url}/api/v1/targets", timeout=10).json()
        return {t["labels"]["job"]: t["health"] for t in body["data"]["activeTargets"]}


@contextmanager
def prometheus(tmp: Path, jobs: dict[str, Sequence[str]], *, interval: str = "1s",
               rule_files: Sequence[Path] = ()) -> Iterator[Prometheus]:  # fmt: skip
    """Prometheus scraping each job's ``host:port`` targets every ``interval``."""
    exe = binary("prometheus")
    port = free_port()
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": list(targets)}]}
            for job, targets in jobs.items()
        ],
    }
    cfg = tmp / "prometheus.yml"
    cfg.write_text(yaml.safe_dump(config))
    log = tmp / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [exe, f"--config.file={cfg}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"prometheus did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield Prometheus(url, log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
