"""Every step kind through a real worker against a real database (in-process ``Worker``,
``burst`` so ``run()`` returns once the queue is empty)."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pulser_ops import Client
from pulser_ops.client import Events, Runs
from pulser_ops.worker import executor
from tests.worker.conftest import burst_worker, template

MCP_SERVER = str(Path(__file__).resolve().parents[1] / "steps" / "mcp_echo_server.py")


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "ok": True}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_every_step_kind_end_to_end(client: Client, http_url: str) -> None:
    client.templates.upsert(
        template(
            "all-kinds",
            [
                {
                    "kind": "shell",
                    "name": "greet",
                    "command": 'echo "run=$PULSER_RUN_ID attempt=$PULSER_ATTEMPT '
                    'name=$PULSER_PARAM_NAME"',
                },
                {"kind": "http", "name": "call", "url": http_url + "/hello/{{ params.name }}"},
                {
                    "kind": "python",
                    "name": "py",
                    "handler": "echo",
                    "args": {"who": "{{ params.name }}"},
                },
                {
                    "kind": "mcp",
                    "name": "ask",
                    "command": [sys.executable, MCP_SERVER],
                    "tool": "echo",
                    "arguments": {"text": "{{ params.name }}"},
                },
            ],
        )
    )
    run = client.runs.create("all-kinds", {"name": "ops"})

    assert burst_worker(client).run() == 0

    done = client.runs.get(run.id)
    assert done.status == "succeeded", (done.error, done.error_class)
    assert done.attempt == 1 and done.worker_id == "test-worker"
    steps = client.runs.steps(run.id)
    assert [(s.name, s.kind, s.status) for s in steps] == [
        ("greet", "shell", "succeeded"),
        ("call", "http", "succeeded"),
        ("py", "python", "succeeded"),
        ("ask", "mcp", "succeeded"),
    ]
    assert steps[0].exit_code == 0
    arts = {a.name: a for a in client.artifacts.list(run.id)}
    assert {"greet.log", "call.response.json", "echo.json", "ask.result.json"} <= set(arts)
    assert f"run={run.id} attempt=1 name=ops" in (arts["greet.log"].inline_text or "")
    assert json.loads(arts["call.response.json"].inline_text or "{}") == {
        "path": "/hello/ops",
        "ok": True,
    }
    assert done.result["result"]["text"] == "ops"  # the last step's (mcp) result
    assert [s["status"] for s in done.result["steps"]] == ["succeeded"] * 4
    events = client.events.list(run.id)
    logs = [e for e in events if e.kind == "log"]
    assert any(f"run={run.id}" in e.message for e in logs)
    assert any(e.message == "echoing" for e in logs)  # the handler's own log line
    kinds = [e.kind for e in events]
    assert kinds[0] == "claimed" and kinds[-1] == "succeeded"
    # batched: far fewer event round trips than lines would need is checked indirectly by
    # every log event carrying the worker id and attempt
    assert all(e.worker_id == "test-worker" and e.attempt == 1 for e in logs)
    workers = {w.id: w for w in client.workers.list()}
    assert workers["test-worker"].status == "stopped"


def test_docker_step_records_missing_engine(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    client.templates.upsert(
        template(
            "dockerised",
            [{"kind": "docker", "name": "box", "image": "alpine:3", "command": "true"}],
        )
    )
    run = client.runs.create("dockerised")

    assert burst_worker(client).run() == 0

    done = client.runs.get(run.id)
    assert done.status == "failed"
    assert done.error_class == "missing_dependency"
    assert "reachable Docker engine" in (done.error or "")
    (step,) = client.runs.steps(run.id)
    assert step.status == "failed" and "Docker engine" in (step.error or "")


def test_non_retryable_handler_fails_at_once_and_skips_later_steps(client: Client) -> None:
    client.templates.upsert(
        template(
            "refuses",
            [
                {"kind": "python", "name": "check", "handler": "refuse"},
                {"kind": "shell", "name": "never", "command": ["true"]},
            ],
            max_attempts=3,
        )
    )
    run = client.runs.create("refuses")

    assert burst_worker(client).run() == 0

    done = client.runs.get(run.id)
    assert (done.status, done.attempt, done.error_class) == ("failed", 1, "bad_input")
    assert [(s.name, s.status) for s in client.runs.steps(run.id)] == [
        ("check", "failed"),
        ("never", "skipped"),
    ]


def test_failing_shell_step_retries_then_fails(client: Client) -> None:
    client.templates.upsert(
        template(
            "fails",
            [{"kind": "shell", "name": "fail", "command": 'echo "try $PULSER_ATTEMPT"; exit 3'}],
            max_attempts=2,
            retry_backoff_seconds=0,
            retry_backoff_max_seconds=0,
        )
    )
    run = client.runs.create("fails")

    assert burst_worker(client).run() == 0

    done = client.runs.get(run.id)
    assert (done.status, done.attempt, done.error_class) == ("failed", 2, "step_failed")
    steps = client.runs.steps(run.id)
    assert [(s.attempt, s.status, s.exit_code) for s in steps] == [
        (1, "failed", 3),
        (2, "failed", 3),
    ]
    kinds = [e.kind for e in client.events.list(run.id)]
    assert "retry_scheduled" in kinds and kinds[-1] == "failed"


def test_template_timeout_fails_the_run_with_timeout(client: Client) -> None:
    client.templates.upsert(
        template(
            "slow",
            [{"kind": "shell", "name": "nap", "command": "echo start; exec sleep 60"}],
            timeout_seconds=1,
        )
    )
    run = client.runs.create("slow")

    assert burst_worker(client).run() == 0

    done = client.runs.get(run.id)
    assert (done.status, done.error_class) == ("failed", "timeout")
    (step,) = client.runs.steps(run.id)
    assert step.status == "failed"
    log = client.artifacts.get(run.id, "nap.log")
    assert "start" in (log.inline_text or "")  # partial output kept


def test_log_lines_are_appended_in_batches(client: Client) -> None:
    client.templates.upsert(
        template("chatty", [{"kind": "shell", "name": "count", "command": ["seq", "1", "2000"]}])
    )
    run = client.runs.create("chatty")

    assert burst_worker(client).run() == 0

    assert client.runs.get(run.id).status == "succeeded"
    logs = [e for e in client.events.list(run.id, limit=5000) if e.kind == "log"]
    lines = [line for e in logs for line in e.message.split("\n")]
    assert lines == [str(i) for i in range(1, 2001)]  # every line, in order...
    assert len(logs) <= 40  # ...in a few batched events, not one event per line
    assert sum(e.data["lines"] for e in logs) == 2000


def test_a_quick_last_step_writes_its_row_once_with_the_completion(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A first step that takes a while shows as running while it runs; the last step ends at
    # once, so its only row is the final one, sent with the completion, and it still says
    # when the step started.
    client.templates.upsert(
        template(
            "two",
            [
                {"kind": "python", "name": "slow", "handler": "slow"},
                {"kind": "python", "name": "quick", "handler": "quick"},
            ],
        )
    )
    run = client.runs.create("two")
    written: list[tuple[int, str]] = []
    record_step = Runs.record_step

    def counting(self: Runs, run_id: object, worker_id: str, attempt: int, idx: int, *a: Any,
                 **kw: Any) -> Any:
        written.append((idx, a[2]))
        return record_step(self, run_id, worker_id, attempt, idx, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Runs, "record_step", counting)
    seen_running: list[str] = []
    worker = burst_worker(client)

    @worker.handler("slow")
    def slow(ctx: Any) -> None:
        time.sleep(executor.RUNNING_ROW_DELAY_SECONDS * 4)
        seen_running.extend(s.status for s in client.runs.steps(run.id))

    @worker.handler("quick")
    def quick(ctx: Any) -> str:
        return "done"

    before = datetime.now(UTC)
    assert worker.run() == 0
    assert client.runs.get(run.id).status == "succeeded"
    assert seen_running == ["running"]  # the first step's row, written while it ran
    # record_run_step: the first step's running and final rows; nothing for the last step.
    assert written == [(0, "running"), (0, "succeeded")]
    steps = client.runs.steps(run.id)
    assert [(s.idx, s.status) for s in steps] == [(0, "succeeded"), (1, "succeeded")]
    assert steps[1].finished_at is not None
    assert before < steps[0].started_at < steps[1].started_at <= steps[1].finished_at


def test_a_runs_last_events_go_with_its_completion(
    client: Client, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A short run's step events and log lines are written by its completion (no append of its
    # own); when the completion is refused, they are appended instead: nothing is lost.
    client.templates.upsert(
        template("chat", [{"kind": "python", "name": "talk", "handler": "talk"}], max_attempts=2)
    )
    kept, stolen = client.runs.create("chat", {"steal": False}), client.runs.create(
        "chat", {"steal": True}, priority=-1
    )
    appended: list[set[str]] = []
    append = Events.append

    def counting(self: Events, events: Any) -> Any:
        appended.append({str(e.run_id) for e in events})
        return append(self, events)

    monkeypatch.setattr(Events, "append", counting)
    worker = burst_worker(client, concurrency=1)

    @worker.handler("talk")
    def talk(ctx: Any) -> None:
        ctx.log.info("hello", n=1)
        if ctx.params["steal"]:  # another worker takes the run over before this one completes
            with psycopg.connect(db_url, autocommit=True) as conn:
                conn.execute(
                    "update public.runs set worker_id = 'thief', attempt = attempt + 1,"
                    " version = version + 1, updated_at = now() where id = %s",
                    (ctx.run_id,),
                )

    assert worker.run() == 0
    assert [e.kind for e in client.events.list(kept.id)] == [
        "claimed", "step", "log", "step", "succeeded"]
    assert not any(str(kept.id) in ids for ids in appended)  # all of it with the completion
    assert client.runs.get(stolen.id).worker_id == "thief"
    kinds = [e.kind for e in client.events.list(stolen.id)]
    assert kinds == ["claimed", "step", "log", "step", "lease_lost"]
    assert any(str(stolen.id) in ids for ids in appended)


def test_each_run_executes_the_template_version_it_was_enqueued_with(client: Client) -> None:
    """Editing a template between enqueue and claim reaches only the runs enqueued after it."""
    client.templates.upsert(template("versioned", [
        {"kind": "shell", "name": "say", "command": "echo from-v1"}]))  # fmt: skip
    old = client.runs.create("versioned")
    client.templates.upsert(template("versioned", [
        {"kind": "shell", "name": "say", "command": "echo from-v2"},
        {"kind": "shell", "name": "more", "command": "echo only-in-v2"}]))  # fmt: skip
    new = client.runs.create("versioned")
    assert (old.template_version, new.template_version) == (1, 2)

    assert burst_worker(client).run() == 0

    for run, want in ((old, ["say"]), (new, ["say", "more"])):
        done = client.runs.get(run.id)
        assert done.status == "succeeded", done.error
        assert [s.name for s in client.runs.steps(run.id)] == want
    logs = {r.id: client.artifacts.get(r.id, "say.log").inline_text or "" for r in (old, new)}
    assert "from-v1" in logs[old.id] and "from-v2" in logs[new.id]
