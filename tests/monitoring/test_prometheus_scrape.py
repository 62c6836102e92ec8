"""A real Prometheus scrapes the fleet exporter (``pulser-ops metrics``), a worker
(``pulser-ops worker --metrics-port``) and the process that enqueued the runs, after a known
scenario: N runs enqueued, M succeeded, K failed, one stuck (its worker was killed) and Q waiting
in a lane nobody serves. Its HTTP API then holds exactly those numbers; it loads
deploy/prometheus/alerts.yml, whose stuck-run alert goes pending; and every expression of the
Grafana dashboard (deploy/grafana/pulser-ops.json) evaluates there."""

from __future__ import annotations

import json
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pulser_ops import Client
from tests.support.prometheus import Prometheus, prometheus
from tests.worker.conftest import wait_for

from .procs import Proc, pulser_ops

ROOT = Path(__file__).resolve().parents[2]
M, K, Q = 6, 3, 4
N = M + K + 1 + Q

ENQUEUER = """
import sys, time
import prometheus_client  # a process that serves metrics counts what it enqueues
import pulser_ops
M, K, Q = (int(x) for x in sys.argv[1:4])
with pulser_ops.connect() as c:
    c.runs.create("slow", lane="B")
    c.runs.create_many([{"template": "ok", "lane": "A"} for _ in range(M)])
    c.runs.create_many([{"template": "bad", "lane": "A"} for _ in range(K)])
    c.runs.create_many([{"template": "ok", "lane": "C"} for _ in range(Q)])
server, _ = prometheus_client.start_http_server(0, "127.0.0.1")
print(f"enqueued; metrics on http://127.0.0.1:{server.server_address[1]}/metrics", flush=True)
time.sleep(600)
"""


def _eventually(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    return wait_for(what, check, timeout=timeout, every=0.5)


@pytest.mark.slow
def test_prometheus_finds_the_scenario_in_the_metrics(
    db_url: str, client: Client, spawn_worker: Any, tmp_path: Path
) -> None:
    client.templates.upsert_many([
        {"name": "ok", "steps": [{"kind": "shell", "name": "fine", "command": "true"}],
         "max_attempts": 1},
        {"name": "bad", "steps": [{"kind": "shell", "name": "boom", "command": "exit 3"}],
         "max_attempts": 1},
        {"name": "slow", "steps": [{"kind": "shell", "name": "long", "command": "sleep 120"}],
         "max_attempts": 2, "lease_seconds": 5},
    ])  # fmt: skip
    env = {"PULSER_OPS_DATABASE_URL": db_url}
    procs: list[Proc] = []
    try:
        enqueuer = Proc([sys.executable, "-c", ENQUEUER, str(M), str(K), str(Q)],
                        tmp_path / "enqueuer.log", env)  # fmt: skip
        procs.append(enqueuer)
        app_port = enqueuer.port()

        # A worker takes the slow run and is killed: its run becomes stuck once the lease ends.
        doomed = spawn_worker("--lanes", "B", "--heartbeat-seconds", "1", worker_id="w-doomed")
        _eventually("the slow run to run", lambda: client.runs.list(status="running"))
        doomed.proc.send_signal(signal.SIGKILL)
        doomed.proc.wait()

        worker = spawn_worker("--lanes", "A", "--concurrency", "2", "--poll-seconds", "0.2",
                              "--metrics-port", "0", "--metrics-host", "127.0.0.1",
                              worker_id="w-metrics")  # fmt: skip
        worker_port = int(_eventually(
            "the worker's metrics port",
            lambda: (m := re.search(r"metrics on http://127\.0\.0\.1:(\d+)", worker.output()))
            and m.group(1)))  # fmt: skip
        exporter = Proc(pulser_ops("metrics", "--port", "0", "--host", "127.0.0.1"),
                        tmp_path / "exporter.log", env)  # fmt: skip
        procs.append(exporter)
        exporter_port = exporter.port()

        jobs = {"fleet": [f"127.0.0.1:{exporter_port}"], "worker": [f"127.0.0.1:{worker_port}"],
                "app": [f"127.0.0.1:{app_port}"]}  # fmt: skip
        rules = [ROOT / "deploy" / "prometheus" / "alerts.yml"]
        with prometheus(tmp_path, jobs, rule_files=rules) as prom:
            _eventually("every target up", lambda: set(prom.targets_up().values()) == {"up"})
            _check_counts(prom)
            _check_the_fleet(prom)
            _check_the_worker(prom)
            pending = _eventually("the stuck-run alert to go pending", lambda: prom.query(
                'ALERTS{alertname="PulserStuckRuns"}'))  # fmt: skip
            assert pending[0]["labels"]["lane"] == "B"
            assert pending[0]["labels"]["alertstate"] in ("pending", "firing")
            _check_the_dashboard(prom)
    finally:
        for p in procs:
            p.stop()


def _check_counts(prom: Prometheus) -> None:
    """What the enqueuer and the worker counted."""
    _eventually("N enqueued", lambda: prom.value("sum(pulser_runs_enqueued_total)") == N)
    by_template = {r["labels"]["template"]: r["value"] for r in
                   prom.query("sum by (template) (pulser_runs_enqueued_total)")}  # fmt: skip
    assert by_template == {"ok": M + Q, "bad": K, "slow": 1}
    _eventually("M + K finished", lambda: prom.value(
        'sum(pulser_runs_finished_total{job="worker"})') == M + K)  # fmt: skip
    finished = {r["labels"]["outcome"]: r["value"] for r in prom.query(
        'sum by (outcome) (pulser_runs_finished_total{job="worker"})')}  # fmt: skip
    assert finished == {"succeeded": M, "failed": K}


def _check_the_fleet(prom: Prometheus) -> None:
    """The exporter's gauges, read from the database at scrape time."""
    _eventually("the stuck run", lambda: prom.value('pulser_runs_stuck{lane="B"}') == 1,
                timeout=30)  # fmt: skip
    assert prom.value("sum(pulser_runs_stuck)") == 1
    runs = {(r["labels"]["lane"], r["labels"]["template"], r["labels"]["status"]): r["value"]
            for r in prom.query('pulser_runs{job="fleet"}')}  # fmt: skip
    assert runs == {
        ("A", "ok", "succeeded"): M,
        ("A", "bad", "failed"): K,
        ("B", "slow", "running"): 1,
        ("C", "ok", "queued"): Q,
    }
    assert prom.value('pulser_queue_oldest_age_seconds{lane="C"}') > 0
    assert prom.value('pulser_queue_oldest_age_seconds{lane="A"}') == 0
    assert prom.value('pulser_lane_paused{lane="C"}') == 0
    _eventually("the killed worker stale", lambda: prom.value(
        'pulser_workers{state="stale"}') == 1)  # fmt: skip
    assert prom.value('pulser_workers{state="alive"}') == 1
    assert prom.value('pulser_worker_slots{state="used"}') == 0
    assert prom.value('pulser_worker_slots{state="free"}') == 2
    beats = {r["labels"]["worker"] for r in
             prom.query("pulser_worker_last_heartbeat_timestamp_seconds")}  # fmt: skip
    assert beats == {"w-doomed", "w-metrics"}
    assert prom.value('pulser_fleet_exact{part="queues"}') == 1
    assert prom.value("pulser_fleet_scrape_error") == 0


def _check_the_worker(prom: Prometheus) -> None:
    """The worker's histograms."""
    assert prom.value('sum(pulser_run_queue_wait_seconds_count{job="worker"})') == M + K
    assert prom.value(
        'sum(pulser_run_duration_seconds_count{job="worker",outcome="succeeded"})') == M
    assert prom.value(
        'sum(pulser_step_duration_seconds_count{job="worker",step_kind="shell"})') == M + K
    failed_steps = prom.value(
        'sum(pulser_step_duration_seconds_count{job="worker",outcome="failed"})')
    assert failed_steps == K
    assert prom.value('pulser_worker_process_slots{job="worker",state="free"}') == 2
    # no run id ever becomes a label
    names = prom.query('{__name__=~"pulser_.+"}')
    assert names and all("run_id" not in r["labels"] for r in names)


def _check_the_dashboard(prom: Prometheus) -> None:
    """Every panel query of the Grafana dashboard is valid PromQL over these metrics, and all
    but the ones about things this scenario lacks return series."""
    board = json.loads((ROOT / "deploy" / "grafana" / "pulser-ops.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    empty = []
    for expr in exprs:
        concrete = (expr.replace("$__rate_interval", "1m").replace("$__range", "5m")
                    .replace("$lane", ".*").replace("$template", ".*"))  # fmt: skip
        if not prom.query(concrete):
            empty.append(expr)
    # sweeper counters (no sweeper in this scenario) and retries may be empty; nothing else
    assert all("sweeper" in e or "retried" in e or "released" in e for e in empty), empty
