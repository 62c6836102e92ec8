"""Processes of the monitoring tests: a command in the background whose output says where it
listens, read from its log."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PULSER_OPS = Path(sys.executable).parent / "pulser-ops"


class Proc:
    def __init__(self, args: Sequence[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        full = {**{k: v for k, v in os.environ.items()
                   if not k.startswith(("PULSER_OPS_", "SUPABASE_"))},
                "PYTHONPATH": str(REPO), **(env or {})}  # fmt: skip
        with log.open("wb") as out:
            self.proc = subprocess.Popen(list(args), stdout=out, stderr=subprocess.STDOUT, env=full)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        """The first match of ``pattern`` in the output, once it is there."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.output())
            if m:
                return m
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} in the output:\n{self.output()[-4000:]}")
            time.sleep(0.1)

    def port(self, timeout: float = 60) -> int:
        """The port of the first ``http://127.0.0.1:PORT`` it printed."""
        return int(self.wait_for(r"http://(?:127\.0\.0\.1|0\.0\.0\.0):(\d+)", timeout).group(1))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def pulser_ops(*args: str) -> list[str]:
    return [str(PULSER_OPS), *args]
