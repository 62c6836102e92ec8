"""Built-in alerts end to end, in real processes: a killed worker's run becomes stuck and a
webhook receiver gets exactly one alert, a reminder after the interval and a "resolved" after
the sweep; a receiver that answers 500 is retried while the sweeper keeps sweeping; a bad rules
file is refused naming its line."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from pulser_ops import Client
from tests.worker.conftest import wait_for

from .procs import Proc, pulser_ops
from .webhook import receiver

ONLY_STUCK = {"stuck_runs": {"after": 0}, "dead_workers": {"enabled": False},
              "queue_age": {"enabled": False}, "failure_rate": {"enabled": False}}  # fmt: skip


def _rules(path: Path, **settings: Any) -> Path:
    path.write_text(yaml.safe_dump(settings))
    return path


@pytest.mark.slow
def test_a_stuck_run_alerts_once_reminds_and_resolves_after_the_sweep(
    db_url: str, client: Client, spawn_worker: Any, tmp_path: Path
) -> None:
    client.templates.upsert({"name": "slow", "lease_seconds": 5, "max_attempts": 3,
                             "steps": [{"kind": "shell", "name": "long", "command": "sleep 120"}]})  # fmt: skip
    run = client.runs.create("slow")
    doomed = spawn_worker("--lanes", "A", worker_id="w-doomed")
    wait_for("the run to start", lambda: client.runs.get(run.id).status == "running")
    doomed.proc.send_signal(signal.SIGKILL)
    doomed.proc.wait()
    with receiver() as hook:
        rules = _rules(tmp_path / "alerts.yml", reminder="3s", interval=0.3, notify=[hook.url],
                       rules=ONLY_STUCK)  # fmt: skip
        alerts = Proc(pulser_ops("alerts", "--rules", str(rules)), tmp_path / "alerts.log",
                      {"PULSER_OPS_DATABASE_URL": db_url})  # fmt: skip
        try:
            [fired] = hook.wait("[FIRING]", timeout=30)  # the lease (5 s) must run out first
            assert "stuck_runs (A): critical" in fired.title
            assert "1 stuck run in lane A" in fired.body["message"]
            assert str(run.id) in fired.body["message"]
            assert fired.body["type"] == "failure"
            reminders = hook.wait("[STILL FIRING]", timeout=30)
            # not before the reminder interval (3 s after the firing notice, by the database)
            since = re.search(r"\((\d+) s\); notice 2\.", reminders[0].body["message"])
            assert since and int(since.group(1)) >= 3, reminders[0].body["message"]
            assert hook.count("[FIRING]") == 1  # evaluated every 0.3 s, announced once
            swept = subprocess.run(pulser_ops("sweep", "--db-url", db_url), capture_output=True,
                                   text=True, timeout=60)  # fmt: skip
            assert "requeued 1" in swept.stdout, swept.stdout + swept.stderr
            [resolved] = hook.wait("[RESOLVED]", timeout=30)
            assert resolved.body["type"] == "success"
            time.sleep(1.0)  # a few more evaluations: nothing new to say
            assert hook.count("[FIRING]") == 1 and hook.count("[RESOLVED]") == 1
            assert "alert: firing critical stuck_runs A" in alerts.output()
        finally:
            assert alerts.stop() == 0, alerts.output()
    [incident] = client.alerts.list()
    assert (incident.rule, incident.status, incident.run_ids) == ("stuck_runs", "resolved",
                                                                 [run.id])  # fmt: skip
    assert incident.notifications >= 2
    notices = [e.data["notice"] for e in client.events.list(run.id) if e.kind == "alert"]
    assert notices == ["firing", "resolved"]


@pytest.mark.slow
def test_a_failing_webhook_is_retried_while_the_sweeper_keeps_sweeping(
    db_url: str, client: Client, tmp_path: Path
) -> None:
    client.templates.upsert({"name": "t", "lease_seconds": 30, "max_attempts": 3})
    old = client.runs.create("t", lane="C")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("update public.runs set available_at = now() - interval '1 hour'"
                     " where id = %s", (str(old.id),))  # fmt: skip
    with receiver(answers=[500, 500, 500]) as hook:
        rules = _rules(
            tmp_path / "alerts.yml", interval=0.2, notify=[hook.url],
            delivery={"attempts": 6, "backoff": 1, "max_backoff": 8},
            rules={"stuck_runs": {"enabled": False}, "dead_workers": {"enabled": False},
                   "failure_rate": {"enabled": False}, "queue_age": {"threshold": "1m"}},
        )  # fmt: skip
        sweeper = Proc(pulser_ops("sweep", "--loop", "--interval", "0.3", "--alert-rules",
                                  str(rules)), tmp_path / "sweeper.log",
                       {"PULSER_OPS_DATABASE_URL": db_url})  # fmt: skip
        try:
            hook.wait("[FIRING]", timeout=30, status=500)  # the first attempt, refused
            # Work for the sweeper while the notice waits to be sent again.
            client.runs.create_many([{"template": "t", "lane": "A"} for _ in range(3)])
            held = client.runs.claim("w-gone", lanes=["A"], limit=3)
            with psycopg.connect(db_url, autocommit=True) as conn:
                conn.execute("update public.runs set lease_expires_at = now() - interval '1 s'"
                             " where status = 'running'")  # fmt: skip
            wait_for("the sweeper to requeue them", lambda: {
                r.status for r in client.runs.get_many([h.id for h in held])} == {"queued"})  # fmt: skip
            swept_at = time.monotonic()
            [delivered] = hook.wait("[FIRING]", timeout=60, status=200)
            assert swept_at < delivered.at  # swept while the delivery was still being retried
            assert hook.count("[FIRING]", status=500) == 3
            assert sweeper.proc.poll() is None  # the failures never stopped it
            assert "requeued 3" in sweeper.output()
            assert "refused firing queue_age (attempt 1 of 6)" in sweeper.output()
        finally:
            assert sweeper.stop() == 0, sweeper.output()
    assert [a.rule for a in client.alerts.list("firing")] == ["queue_age"]


def test_a_bad_rules_file_is_refused_naming_the_line(tmp_path: Path) -> None:
    """By `pulser-ops alerts` and by the sweeper's --alerts, before either connects (the URL
    leads nowhere): one line, the file and its line, a non-zero exit."""
    bad = tmp_path / "alerts.yml"
    bad.write_text(
        "reminder: 1h\n"
        "rules:\n"
        "  failure_rate:\n"
        "    window: 15m\n"
        "    threshold: 1.5\n"
    )
    env = {"PULSER_OPS_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(pulser_ops("alerts", "--rules", str(bad), "--once"),
                         capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f"error: {bad} line 5: rules.failure_rate.threshold: Input should be less than or "
        "equal to 1"
    ), out.stderr
    swept = subprocess.run(pulser_ops("sweep", "--alert-rules", str(bad)), capture_output=True,
                           text=True, timeout=60, env=env)  # fmt: skip
    assert swept.returncode == 2 and f"{bad} line 5:" in swept.stderr
    assert "Traceback" not in swept.stderr + out.stderr
