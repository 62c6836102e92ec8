"""``pulser-ops ui`` on a fresh directory: no flags but a free port, the embedded database,
loopback without sign-in; bound elsewhere it prints a token URL and requires it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pulser_ops import embedded


def _start(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pulser_ops.cli", "ui", "--port", "0", *args],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    seen = []
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if m := re.search(r"(http://\S+)", line):
            return proc, m.group(1)
    proc.kill()
    raise AssertionError("no URL printed:\n" + "".join(seen))


@pytest.mark.slow
def test_ui_opens_on_the_embedded_database_with_no_flags(tmp_path: Path) -> None:
    for d in [tmp_path, *tmp_path.parents]:  # the embedded server runs as `postgres`
        if d == Path("/tmp") or d == d.parent:
            break
        d.chmod(d.stat().st_mode | 0o011)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSER_OPS_", "SUPABASE_"))}
    proc, url = _start([], tmp_path, env)
    try:
        assert url.startswith("http://127.0.0.1:") and "token=" not in url
        page = httpx.get(url, timeout=30)
        assert page.status_code == 200 and 'id="lane-A"' in page.text
        assert "local · admin" in page.text
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    try:
        proc, url = _start(["--host", "0.0.0.0"], tmp_path, env)
        try:
            token = url.split("token=", 1)[1]
            base = url.split("?", 1)[0]
            assert httpx.get(base, timeout=30).status_code == 401
            ok = httpx.get(base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
            assert ok.status_code == 200
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
    finally:
        embedded.stop(tmp_path / ".pulser-ops")
