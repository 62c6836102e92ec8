"""The worker's health endpoint (``--health-port``): what probes and deploy checks read.

The rules are checked on :class:`Health` with a hand-driven clock; a real worker process then
shows them over HTTP: ready once it claims, not ready while its claims fail, draining (alive,
not ready) after SIGTERM, gone when it exits.
"""

from __future__ import annotations

import json
import re
import signal
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from pulser_ops import Client
from pulser_ops.worker import WorkerConfigError, load
from pulser_ops.worker.health import Health, stall_after
from tests.worker.conftest import WorkerProcess, template, wait_for


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_rules_starting_ok_failing_stalled_draining() -> None:
    clock, stopping, held = Clock(), [False], [0]
    h = Health(
        "w1", 4, 2.0, held=lambda: held[0], stopping=lambda: stopping[0], clock=clock
    )
    assert h.report("/healthz")[0] == 200, "starting is alive"
    code, body = h.report("/readyz")
    assert (code, body["status"], body["seconds_since_claim"]) == (503, "starting", None)

    h.turn()
    h.claimed()
    held[0] = 3
    clock.now += 1.5
    code, body = h.report("/readyz")
    assert code == 200 and body == {
        "status": "ok",
        "worker_id": "w1",
        "running": 3,
        "concurrency": 4,
        "seconds_since_claim": 1.5,
    }

    h.claim_failed("transport_error: connection refused")
    code, body = h.report("/readyz")
    assert (code, body["status"], body["error"]) == (
        503,
        "claim_failing",
        "transport_error: connection refused",
    )
    assert h.report("/healthz")[0] == 200, "a failing database is not a reason to restart"
    h.turn()
    h.claimed()
    assert h.report("/readyz")[0] == 200 and "error" not in h.report("/readyz")[1]

    clock.now += stall_after(2.0) + 0.1  # the loop did not come round
    assert [h.report(p)[0] for p in ("/healthz", "/readyz")] == [503, 503]
    assert h.report("/healthz")[1]["status"] == "stalled"

    stopping[0] = True  # the claim loop ended on purpose: draining is alive, never ready
    assert [h.report(p)[0] for p in ("/healthz", "/readyz")] == [200, 503]
    assert h.report("/readyz")[1]["status"] == "draining"


def test_stall_threshold_follows_the_poll_interval() -> None:
    assert stall_after(2.0) == 30.0
    assert stall_after(60.0) == 180.0


def test_settings_from_flags_and_environment() -> None:
    cfg = load({"health_port": "8081"}, env={"PULSER_OPS_HEALTH_HOST": "127.0.0.1"})
    assert (cfg.health_port, cfg.health_host) == (8081, "127.0.0.1")
    assert load({}, env={}).health_port is None
    with pytest.raises(WorkerConfigError, match=r"PULSER_OPS_HEALTH_PORT: must be 0 to 65535"):
        load({}, env={"PULSER_OPS_HEALTH_PORT": "70000"})
    with pytest.raises(WorkerConfigError, match=r"--health-port: expected an integer"):
        load({"health_port": "http"}, env={})


def _get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _port(w: WorkerProcess) -> int:
    found = re.search(r"health endpoint: http://127\.0\.0\.1:(\d+)/healthz", w.output())
    return int(found.group(1)) if found else 0


def test_a_real_worker_over_http(
    client: Client, db_url: str, spawn_worker: Callable[..., WorkerProcess]
) -> None:
    client.templates.upsert(
        template("slow", [{"kind": "shell", "name": "s", "command": "echo started; sleep 3"}])
    )
    w = spawn_worker(
        "--lanes", "A", "--health-port", "0", "--health-host", "127.0.0.1",
        "--poll-seconds", "0.2", "--shutdown-grace-seconds", "30",
    )  # fmt: skip
    port = wait_for("the health endpoint", lambda: _port(w))
    wait_for("readiness", lambda: _get(port, "/readyz")[0] == 200)
    code, body = _get(port, "/healthz")
    assert code == 200 and body["worker_id"] == w.worker_id and body["status"] == "ok"
    assert _get(port, "/metrics")[0] == 404

    # Claims that fail (the function is gone) make it not ready, while it stays alive.
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("alter function public.claim_runs rename to claim_runs_away")
        try:
            code, body = wait_for(
                "claims to fail", lambda: (r := _get(port, "/readyz"))[0] == 503 and r
            )
            assert body["status"] == "claim_failing" and body["error"]
            assert _get(port, "/healthz")[0] == 200
        finally:
            conn.execute("alter function public.claim_runs_away rename to claim_runs")
    wait_for("readiness again", lambda: _get(port, "/readyz")[0] == 200)

    run = client.runs.create("slow")
    wait_for("the run to be held", lambda: _get(port, "/readyz")[1]["running"] == 1)
    wait_for(
        "the step to start",
        lambda: any("started" in e.message for e in client.events.list(run.id)),
    )
    w.signal(signal.SIGTERM)
    code, body = wait_for("draining", lambda: (r := _get(port, "/readyz"))[0] == 503 and r)
    assert body["status"] == "draining" and body["running"] == 1
    assert _get(port, "/healthz")[0] == 200, "a draining worker is alive"
    assert w.wait() == 0
    assert client.runs.get(run.id).status == "succeeded"
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_a_port_in_use_is_one_clear_line(
    spawn_worker: Callable[..., WorkerProcess],
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        w = spawn_worker("--health-port", str(busy), "--health-host", "127.0.0.1")
        assert w.wait() == 2
    assert re.search(rf"error: health_port: cannot listen on 127\.0\.0\.1:{busy} \(", w.output())
