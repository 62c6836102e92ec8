"""worker.ts with Node against the stand-in, alone and next to the Python worker: work crosses
between the languages both ways, every guarantee of the worker protocol holds (fenced
completion, cancel, lease lost, release on SIGTERM), and a mixed fleet executes each run
exactly once, judged by the handlers' own side effect."""

from __future__ import annotations

import itertools
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from pulser_ops import Client
from tests.typescript.conftest import HANDLERS, Node, rec_template
from tests.worker.conftest import WorkerProcess, executions, template, wait_for


def _ts_templates(client: Client) -> None:
    """Templates the TypeScript test handlers serve (by name); their steps are for Python."""
    for name in ("echo", "wait", "hog", "refuse", "nobody"):
        client.templates.upsert(template(name, [{"kind": "python", "name": name,
                                                 "handler": name}]))


def test_typescript_worker_executes_runs_enqueued_from_python(node: Node,
                                                              client: Client) -> None:
    _ts_templates(client)
    echo = client.runs.create("echo", {"x": 1})
    refused = client.runs.create("refuse")
    unknown = client.runs.create("nobody")
    worker = node.worker("ts-1", burst=True)
    assert worker.wait(60) == 0, worker.output()

    done = client.runs.get(echo.id)
    assert (done.status, done.attempt, done.worker_id) == ("succeeded", 1, "ts-1")
    assert done.result["result"] == {"params": {"x": 1}, "by": "typescript"}
    [step] = done.result["steps"]  # the Python worker's shape: a summary of the steps
    assert (step["name"], step["kind"], step["status"]) == ("echo", "typescript", "succeeded")
    kinds = [(e.kind, e.message) for e in client.events.list(echo.id)]
    assert ("log", "echoing") in kinds
    assert kinds[-1][0] == "succeeded"
    assert client.artifacts.download(echo.id, "echo.json") == b'{"ok":true}'
    blob = client.artifacts.get(echo.id, "blob.bin")
    assert (blob.storage_path, blob.size_bytes) == (f"{echo.id}/blob.bin", 4)
    assert (node.sb.app.storage.root / "run-artifacts" / str(echo.id) / "blob.bin"
            ).read_bytes() == bytes([0, 1, 2, 255])

    no = client.runs.get(refused.id)
    assert (no.status, no.error_class, no.attempt) == ("failed", "bad_input", 1)
    lost = client.runs.get(unknown.id)
    assert (lost.status, lost.error_class) == ("failed", "unknown_handler")
    worker_row = next(w for w in client.workers.list() if w.id == "ts-1")
    assert worker_row.status == "stopped"


@pytest.mark.slow
def test_python_worker_executes_runs_enqueued_from_typescript(
    node: Node, client: Client, spawn_worker: Callable[..., WorkerProcess], exec_dir: Path
) -> None:
    rec_template(client)
    runs = [node.enqueue("rec", f'{{"n": {i}}}', "--key", f"k{i}") for i in range(3)]
    py = spawn_worker("--lanes", "A", "--burst", "--poll-seconds", "0.2", worker_id="py-1")
    assert py.wait(60) == 0, py.output()
    for r in runs:
        run = client.runs.get(r["id"])
        assert (run.status, run.worker_id) == ("succeeded", "py-1")
        assert run.result is not None and run.result["result"] == {"n": r["params"]["n"]}
    assert {k: [row[:2] for row in v] for k, v in executions(exec_dir).items()} == {
        r["id"]: [(1, "py-1")] for r in runs}


def test_cancel_stops_the_handler_and_the_run_ends_cancelled(node: Node,
                                                             client: Client) -> None:
    _ts_templates(client)
    run = client.runs.create("wait", {"seconds": 120})
    worker = node.worker("ts-c", PULSER_OPS_LEASE_SECONDS="6")  # a beat every 2 s
    wait_for("the claim", lambda: client.runs.get(run.id).status == "running")
    client.runs.cancel(run.id, "changed my mind")
    done = wait_for("the cancelled run", lambda: (r := client.runs.get(run.id)).is_terminal
                    and r)
    assert (done.status, done.error, done.error_class) == (
        "cancelled", "cancelled: changed my mind", "cancelled")
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0, worker.output()


def test_sigterm_releases_runs_that_do_not_finish_within_the_grace(node: Node,
                                                                   client: Client) -> None:
    _ts_templates(client)
    slow = client.runs.create("wait", {"seconds": 120})
    worker = node.worker("ts-t", PULSER_OPS_SHUTDOWN_GRACE_SECONDS="0.5")
    wait_for("the claim", lambda: client.runs.get(slow.id).status == "running")
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0, worker.output()
    back = client.runs.get(slow.id)
    assert (back.status, back.attempt, back.worker_id) == ("queued", 0, None)
    assert [e.kind for e in client.events.list(slow.id)][-1] == "released"
    assert next(w for w in client.workers.list() if w.id == "ts-t").status == "stopped"


@pytest.mark.slow
def test_a_run_whose_lease_was_lost_is_never_completed_by_the_typescript_worker(
    node: Node, client: Client, db_url: str
) -> None:
    """A handler that blocks Node's event loop starves the heartbeat; the lease runs out, the
    sweeper requeues the run and another worker takes it. When the handler returns, the
    worker's completion is refused (PO410) and it leaves the run alone."""
    _ts_templates(client)
    client.templates.upsert(template("hog", [{"kind": "python", "name": "hog",
                                              "handler": "hog"}], max_attempts=2))
    run = client.runs.create("hog", {"seconds": 9})
    worker = node.worker("ts-hog", concurrency=1, PULSER_OPS_LEASE_SECONDS="5")
    wait_for("the claim", lambda: client.runs.get(run.id).status == "running")
    wait_for("the lease to run out",
             lambda: (r := client.runs.get(run.id)).lease_expires_at is not None
             and r.lease_expires_at.timestamp() < time.time() - 0.5, timeout=30)
    assert [s.run_id for s in client.runs.sweep()] == [run.id]
    [taken] = client.runs.claim("py-thief", lanes="A")
    assert (taken.id, taken.attempt) == (run.id, 2)
    wait_for("the TypeScript worker to give the run up",
             lambda: "lease_lost" in [e.kind for e in client.events.list(run.id)], timeout=60)
    assert client.runs.get(run.id).status == "running"  # still py-thief's, untouched
    client.runs.complete(run.id, "py-thief", 2, "succeeded")
    final = client.runs.get(run.id)
    assert (final.status, final.worker_id, final.attempt) == ("succeeded", "py-thief", 2)
    completed = [e for e in client.events.list(run.id) if e.kind == "succeeded"]
    assert [(e.attempt, e.worker_id) for e in completed] == [(2, "py-thief")]
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0, worker.output()
    assert "lease lost, not completing it" in worker.output()


RUNS = 300


@pytest.mark.slow
def test_mixed_fleet_executes_every_run_exactly_once(
    node: Node, client: Client, spawn_worker: Callable[..., WorkerProcess], exec_dir: Path
) -> None:
    """2 TypeScript workers (over HTTP) and 1 Python worker (over PostgreSQL) on one queue.
    One run in ten fails its first attempt on purpose, so it executes twice."""
    rec_template(client)
    created = client.runs.create_many(
        {"template": "rec", "lane": "ABCD"[i % 4],
         "params": {"n": i, "hold": 0.002, "fail_first": i % 10 == 0}}
        for i in range(RUNS))
    ids = {str(r.id) for r in created}
    ts = [node.worker(f"ts-{i}", concurrency=4, burst=True) for i in range(2)]
    py = spawn_worker("--concurrency", "4", "--burst", "--poll-seconds", "0.2",
                      worker_id="py-0")
    for w in ts:
        assert w.wait(300) == 0, w.output()[-3000:]
    assert py.wait(300) == 0, py.output()[-3000:]

    runs = list(client.runs.iter(template="rec"))
    assert Counter(r.status for r in runs) == {"succeeded": RUNS}
    flaky = {str(r.id) for r in runs if r.params["fail_first"]}
    assert all(r.attempt == (2 if str(r.id) in flaky else 1) for r in runs)
    done = executions(exec_dir)
    assert set(done) == ids
    for run_id, rows in done.items():  # exactly once per attempt, never overlapping
        assert sorted(a for a, *_ in rows) == ([1, 2] if run_id in flaky else [1]), rows
        spans = sorted((start, end) for _, _, start, end in rows)
        assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans)), rows
    by_run = {str(r.id): r.worker_id for r in runs}
    assert all(max(rows)[1] == by_run[run_id] for run_id, rows in done.items())
    who = Counter(w for rows in done.values() for _, w, *_ in rows)
    assert set(who) == {"ts-0", "ts-1", "py-0"}, who  # every worker took part


@pytest.mark.slow
def test_runs_of_a_killed_typescript_worker_are_swept_and_finished_by_the_others(
    node: Node, client: Client, spawn_worker: Callable[..., WorkerProcess], exec_dir: Path
) -> None:
    rec_template(client, max_attempts=2)
    created = client.runs.create_many({"template": "rec", "params": {"n": i, "hold": 3}}
                                      for i in range(16))
    doomed = node.worker("ts-doomed", concurrency=4, PULSER_OPS_LEASE_SECONDS="5")
    wait_for("four claims", lambda: len([r for r in client.runs.list(status=["running"])
                                         if r.worker_id == "ts-doomed"]) == 4)
    doomed.signal(signal.SIGKILL)
    assert doomed.wait(10) == -signal.SIGKILL
    held = {str(r.id) for r in client.runs.list(status=["running"])
            if r.worker_id == "ts-doomed"}
    assert len(held) == 4  # nothing of theirs was completed: the hold is 3 s

    others = [node.worker("ts-2", concurrency=4, PULSER_OPS_LEASE_SECONDS="5"),
              spawn_worker("--concurrency", "4", "--poll-seconds", "0.2", "--lease-seconds", "5",
                           worker_id="py-2")]

    def all_done() -> bool:
        client.runs.sweep()  # the sweeper's one call, as `pulser-ops sweep` makes it
        return all(r.is_terminal for r in client.runs.get_many([r.id for r in created]))

    wait_for("every run to end", all_done, timeout=120, every=0.5)
    for w in others:
        w.signal(signal.SIGTERM)
        assert w.wait(60) == 0, w.output()[-3000:]

    runs = {str(r.id): r for r in client.runs.get_many([r.id for r in created])}
    assert {r.status for r in runs.values()} == {"succeeded"}
    done = executions(exec_dir)
    for run_id, run in runs.items():
        if run_id in held:  # swept (attempt 1 died with the worker), then run once more
            assert run.attempt == 2 and run.worker_id in {"ts-2", "py-2"}, run
            assert [(a, w) for a, w, *_ in done[run_id]] == [(2, run.worker_id)]
            assert "swept" in [e.kind for e in client.events.list(run_id)]
        else:
            assert [a for a, *_ in done[run_id]] == [1]


class LosingProxy:
    """An HTTP proxy in front of the stand-in that forwards the first claim that takes runs and
    then drops the connection instead of answering: the claim committed, the worker never
    hears of it (a timeout, a reset by a load balancer)."""

    def __init__(self, upstream: str) -> None:
        self.lost_claims: list[Any] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length", "connection")}
                res = httpx.request(self.command, upstream + self.path, headers=headers,
                                    content=body, timeout=30)
                if (self.path.endswith("/rpc/claim_runs") and not proxy.lost_claims
                        and res.status_code == 200 and res.json()):
                    proxy.lost_claims.append(res.json())
                    self.close_connection = True  # no answer: the socket just closes
                    return
                self.send_response(res.status_code)
                for k, v in res.headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("content-length", str(len(res.content)))
                self.end_headers()
                self.wfile.write(res.content)

            do_GET = do_POST = do_PUT = do_HEAD = _forward

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_runs_of_a_claim_whose_reply_was_lost_are_adopted_not_left_to_the_sweeper(
    node: Node, client: Client, exec_dir: Path
) -> None:
    rec_template(client, max_attempts=1)  # one attempt: waiting out the lease would fail it
    created = client.runs.create_many({"template": "rec", "params": {"n": i}} for i in range(2))
    proxy = LosingProxy(node.sb.url)
    try:
        worker = node.spawn("worker", name="ts-lossy", env={
            "SUPABASE_URL": proxy.url, "PULSER_OPS_WORKER_ID": "ts-lossy",
            "PULSER_OPS_CONCURRENCY": "2", "PULSER_OPS_POLL_SECONDS": "0.2",
            "PULSER_OPS_BURST": "1", "PULSER_HANDLERS": str(HANDLERS)})
        assert worker.wait(60) == 0, worker.output()
    finally:
        proxy.close()
    [lost] = proxy.lost_claims
    assert {r["id"] for r in lost} == {str(r.id) for r in created}  # that claim took both
    assert "claim failed" in worker.output()
    for run in client.runs.get_many([r.id for r in created]):
        assert (run.status, run.attempt, run.worker_id) == ("succeeded", 1, "ts-lossy")
        assert run.sweep_count == 0
    assert {k: [row[:2] for row in v] for k, v in executions(exec_dir).items()} == {
        str(r.id): [(1, "ts-lossy")] for r in created}
