"""What only a process knows, in that process's registry: a worker's counters and histograms
(through the observer contract, worker/observer.py), the sweeper's per-lane counters and the
schedules it fired, and the runs a process enqueued; a failing observer never hurts a run."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from pulser_ops import Client
from pulser_ops.metrics import SweeperMetrics
from pulser_ops.metrics.worker import PrometheusObserver
from pulser_ops.sweeper import sweep_once
from pulser_ops.worker import Worker, WorkerConfig
from pulser_ops.worker.observer import NullObserver


def _templates(client: Client) -> None:
    client.templates.upsert_many([
        {"name": "ok", "max_attempts": 1, "steps": [
            {"kind": "shell", "name": "a", "command": "true"},
            {"kind": "python", "name": "b", "handler": "noop"}]},
        {"name": "bad", "max_attempts": 1,
         "steps": [{"kind": "shell", "name": "boom", "command": "exit 3"}]},
        {"name": "again", "max_attempts": 2, "retry_backoff_seconds": 0,
         "retry_backoff_max_seconds": 0,
         "steps": [{"kind": "shell", "name": "boom", "command": "exit 3"}]},
        {"name": "late", "max_attempts": 1,
         "steps": [{"kind": "shell", "name": "nap", "command": "sleep 30", "timeout_seconds": 0.5,
                    "kill_grace_seconds": 0}]},
    ])  # fmt: skip


def _worker(client: Client, observer: Any) -> Worker:
    cfg = WorkerConfig(worker_id="w-metrics", lanes=("A",), concurrency=2, poll_seconds=0.1,
                       burst=True)  # fmt: skip
    return Worker(client, config=cfg, listen=False, observer=observer)


def test_a_worker_counts_its_runs_and_steps(client: Client) -> None:
    _templates(client)
    client.runs.create_many([{"template": "ok"}] * 3 + [{"template": "bad"}] * 2
                            + [{"template": "again"}, {"template": "late"}])  # fmt: skip
    reg = CollectorRegistry()
    assert _worker(client, PrometheusObserver(reg)).run() == 0

    def value(name: str, **labels: str) -> float:
        return reg.get_sample_value(name, labels) or 0.0

    assert value("pulser_runs_claimed_total", lane="A", template="ok") == 3
    assert value("pulser_runs_finished_total", lane="A", template="ok", outcome="succeeded") == 3
    assert value("pulser_runs_finished_total", lane="A", template="bad", outcome="failed") == 2
    # "again" failed twice: retried after its first attempt, failed after its second
    assert value("pulser_runs_retried_total", lane="A") == 1
    assert value("pulser_runs_finished_total", lane="A", template="again", outcome="failed") == 1
    assert value("pulser_run_duration_seconds_count", lane="A", template="again",
                 outcome="retried") == 1  # fmt: skip
    assert value("pulser_runs_finished_total", lane="A", template="late", outcome="failed") == 1
    assert value("pulser_run_queue_wait_seconds_count", lane="A") == 3 + 2 + 2 + 1
    assert value("pulser_step_duration_seconds_count", step_kind="shell",
                 outcome="succeeded") == 3  # fmt: skip
    assert value("pulser_step_duration_seconds_count", step_kind="python",
                 outcome="succeeded") == 3  # fmt: skip
    assert value("pulser_step_duration_seconds_count", step_kind="shell", outcome="failed") == 4
    assert value("pulser_step_duration_seconds_count", step_kind="shell", outcome="timeout") == 1
    assert value("pulser_worker_process_slots", state="used") == 0
    assert value("pulser_worker_process_slots", state="free") == 2
    [w] = client.workers.list()
    assert w.metadata["heartbeat_seconds"] == 10.0  # what the dead-worker alert judges by


class Broken(NullObserver):
    def runs_claimed(self, lane: str, template: str, queue_wait_seconds: float) -> None:
        raise RuntimeError("exporter bug")

    def run_finished(self, *a: Any) -> None:
        raise RuntimeError("exporter bug")


def test_a_failing_observer_never_hurts_a_run(client: Client, caplog: Any) -> None:
    _templates(client)
    client.runs.create_many([{"template": "ok"}] * 2)
    assert _worker(client, Broken()).run() == 0
    assert {r.status for r in client.runs.list()} == {"succeeded"}
    complaints = [r for r in caplog.records if "observer failed" in r.getMessage()]
    assert len(complaints) == 1  # logged once


def test_the_sweeper_counts_by_lane(client: Client, db_url: str) -> None:
    import psycopg

    client.templates.upsert({"name": "t", "max_attempts": 1, "lease_seconds": 30})
    client.runs.create_many([{"template": "t", "lane": "B"}] * 2 + [{"template": "t", "lane": "C"}])
    client.runs.claim("w-gone", lanes="B,C", limit=3)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("update public.runs set lease_expires_at = now() - interval '1 s'")
    reg = CollectorRegistry()
    report = sweep_once(client, batch=2, metrics=SweeperMetrics(reg))
    assert report.failed == 3
    assert reg.get_sample_value("pulser_sweeper_failed_total", {"lane": "B"}) == 2
    assert reg.get_sample_value("pulser_sweeper_failed_total", {"lane": "C"}) == 1
    assert reg.get_sample_value("pulser_sweeper_sweep_duration_seconds_count", {}) == 1


def test_the_sweeper_counts_the_schedules_it_fires(client: Client, db_url: str) -> None:
    import psycopg

    client.templates.upsert({"name": "t", "params_schema": {
        "type": "object", "properties": {"n": {"type": "integer"}}}})
    client.schedules.upsert_many([{"name": "fine", "template": "t", "cron": "@daily"},
                                  {"name": "unfit", "template": "t", "cron": "@daily",
                                   "params": {"n": 1}}])  # fmt: skip
    client.templates.upsert({"name": "t", "params_schema": {
        "type": "object", "properties": {"n": {"type": "string"}}}})  # unfit's params no longer fit
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("update public.run_schedules set next_run_at = now() - interval '1 minute'")
    reg = CollectorRegistry()
    report = sweep_once(client, metrics=SweeperMetrics(reg))
    assert sorted((f.schedule, f.run_id is not None) for f in report.fired) == [
        ("fine", True), ("unfit", False)]
    assert reg.get_sample_value("pulser_sweeper_schedules_fired_total", {"schedule": "fine"}) == 1
    assert reg.get_sample_value("pulser_sweeper_schedule_errors_total", {"schedule": "unfit"}) == 1
    assert reg.get_sample_value("pulser_sweeper_schedules_fired_total", {"schedule": "unfit"}) is None
