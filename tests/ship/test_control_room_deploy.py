"""The control room as Kubernetes and App Platform start it: the container's command and
environment from deploy/k8s/control-room.yaml and deploy/do/app.yaml, run here against the
test database (only the port differs, a free one). Its probes' path answers without
credentials, everything else wants the sign-in the deployment provides, and the event stream
tells proxies not to buffer it.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.ship.support import ROOT, VENV_BIN


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _k8s() -> tuple[list[str], dict[str, str], str]:
    docs = list(yaml.safe_load_all((ROOT / "deploy/k8s/control-room.yaml").read_text()))
    dep = next(d for d in docs if d["kind"] == "Deployment")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
    return list(c["args"]), env, c["readinessProbe"]["httpGet"]["path"]


def _app_platform() -> tuple[list[str], dict[str, str], str]:
    spec = yaml.safe_load((ROOT / "deploy/do/app.yaml").read_text())
    (room,) = spec["services"]
    argv = shlex.split(room["run_command"])
    assert argv[0] == "pulser-ops"
    env = {e["key"]: e["value"] for e in room["envs"] if "${" not in e["value"]}
    return argv[1:], env, room["health_check"]["http_path"]


@pytest.fixture(params=["k8s", "app-platform"])
def room(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    args, env, probe = _k8s() if request.param == "k8s" else _app_platform()
    port = _free_port()
    args[args.index("--port") + 1] = str(port)
    secrets = {
        "PULSER_OPS_DATABASE_URL": db_url,
        "PULSER_OPS_UI_USER": "ops",
        "PULSER_OPS_UI_PASSWORD": "s3cret-pw",
        "PULSER_OPS_STORAGE_DIR": str(tmp_path / "files"),
    }
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PULSER_OPS_", "SUPABASE_"))}
    log = (tmp_path / "ui.log").open("w")
    proc = subprocess.Popen(
        [str(VENV_BIN / "pulser-ops"), *args], env={**clean, **env, **secrets},
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + probe, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, (tmp_path / "ui.log").read_text()
            assert time.monotonic() < deadline, "the control room did not come up"
            time.sleep(0.2)
        yield {"base": base, "probe": probe, "auth": ("ops", "s3cret-pw")}
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def test_the_probe_answers_and_the_board_wants_the_deployments_sign_in(room: dict[str, Any]) -> None:
    health = httpx.get(room["base"] + room["probe"], timeout=5)
    assert health.status_code == 200 and health.json()["ok"] is True
    assert httpx.get(room["base"] + "/", timeout=5).status_code == 401
    board = httpx.get(room["base"] + "/", auth=room["auth"], timeout=10)
    assert board.status_code == 200 and "<html" in board.text.lower()


def test_the_event_stream_asks_proxies_not_to_buffer(room: dict[str, Any]) -> None:
    with httpx.stream(
        "GET", room["base"] + "/events", auth=room["auth"], timeout=10,
        headers={"X-Forwarded-Proto": "https"},
    ) as r:  # fmt: skip
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-accel-buffering"] == "no"
