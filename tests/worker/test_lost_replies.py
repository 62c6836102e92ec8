"""Calls whose reply never came: the database did the work (or could not be reached), and the
worker must neither lose finished work nor leave runs waiting out their lease.

A lost reply is staged by a transport that sends the call to the real database and then
raises ``TransportError`` as if the connection had died before the answer arrived (the
moment a crash restart can hit). Unreachable moments raise before sending.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest

from pulser_ops import Client, Completion, CompletionEvent, TransportError
from pulser_ops.calls import Call
from pulser_ops.worker import Worker
from pulser_ops.worker.completer import Completer
from pulser_ops.worker.events import EventSink
from tests.worker.conftest import burst_worker, template

T = TypeVar("T")


class Faults:
    """Wraps a real transport: ``lose(fn, n)`` sends the next n calls of ``fn`` and loses their
    replies; ``refuse(fn, n)`` fails the next n without sending them."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.files = inner.files
        self.lost: dict[str, int] = {}
        self.unreachable: dict[str, int] = {}
        self.sent: list[str] = []
        self.on_lost: Callable[[str, Any], None] = lambda fn, result: None

    def lose(self, fn: str, n: int = 1) -> None:
        self.lost[fn] = n

    def refuse(self, fn: str, n: int = 1) -> None:
        self.unreachable[fn] = n

    def execute(self, call: Call[T]) -> T:
        if self.unreachable.get(call.fn, 0) > 0:
            self.unreachable[call.fn] -= 1
            raise TransportError("database connection failed: Connection refused")
        result = self.inner.execute(call)
        self.sent.append(call.fn)
        if self.lost.get(call.fn, 0) > 0 and (result or call.fn != "claim_runs"):
            self.lost[call.fn] -= 1
            self.on_lost(call.fn, result)
            raise TransportError(
                "database connection failed: server closed the connection unexpectedly"
            )
        return result

    def close(self) -> None:
        pass


@pytest.fixture
def faults(client: Client) -> Faults:
    return Faults(client.transport)


def _worker(faulty: Client, **kw: Any) -> Worker:
    return burst_worker(faulty, worker_id="w-lost", concurrency=4, poll_seconds=0.1, **kw)


@pytest.fixture
def exec_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the ``chaos`` handler records each execution (one file per run)."""
    d = tmp_path / "exec"
    d.mkdir()
    monkeypatch.setenv("PULSER_TEST_EXEC_DIR", str(d))
    return d


def _executions(exec_dir: Path) -> dict[str, list[str]]:
    return {f.name: f.read_text().splitlines() for f in exec_dir.iterdir()}


def _single_attempt_runs(client: Client, n: int) -> list[str]:
    client.templates.upsert(
        template(
            "lost",
            [{"kind": "python", "name": "chaos", "handler": "chaos"}],
            max_attempts=1,
            lease_seconds=3600,  # a run left to its lease would outlast the test by far
        )
    )
    return [str(r.id) for r in client.runs.create_many([{"template": "lost"}] * n)]


def test_runs_of_a_claim_whose_reply_was_lost_are_adopted(
    client: Client, faults: Faults, exec_dir: Path
) -> None:
    ids = _single_attempt_runs(client, 3)
    faults.lose("claim_runs")
    worker = _worker(Client(faults))

    assert worker.run() == 0

    assert "list_held_runs" in faults.sent
    final = client.runs.get_many(ids)
    assert {(r.status, r.attempt, r.worker_id) for r in final} == {("succeeded", 1, "w-lost")}
    assert {k: [x.split()[0] for x in v] for k, v in _executions(exec_dir).items()} == {
        i: ["start", "end"] for i in ids
    }  # each executed once, under the claim that was lost
    assert worker.endings == {"succeeded": 3}
    kinds = [e.kind for e in client.events.list(ids[0])]
    assert kinds[0] == "claimed" and kinds[-1] == "succeeded" and kinds.count("claimed") == 1


def test_a_worker_that_stops_gives_the_unheard_runs_back(
    client: Client, faults: Faults, exec_dir: Path
) -> None:
    ids = _single_attempt_runs(client, 2)
    worker = _worker(Client(faults), burst=False)
    faults.lose("claim_runs")
    faults.on_lost = lambda fn, result: worker.stop(reason="SIGTERM received")

    assert worker.run() == 0

    final = client.runs.get_many(ids)
    assert {(r.status, r.attempt, r.worker_id) for r in final} == {("queued", 0, None)}
    assert _executions(exec_dir) == {}  # never executed
    for run_id in ids:
        [released] = [e for e in client.events.list(run_id) if e.kind == "released"]
        assert "reply was lost" in released.message


def test_the_database_not_answering_leaves_a_claim_unheard_until_it_does(
    client: Client, faults: Faults, exec_dir: Path
) -> None:
    # The claim's reply is lost and the database then stays away for a while: the worker asks
    # again until it can tell which runs are its own.
    ids = _single_attempt_runs(client, 2)
    faults.lose("claim_runs")
    faults.refuse("list_held_runs", 2)

    assert _worker(Client(faults)).run() == 0

    assert faults.sent.count("list_held_runs") == 1  # two refused, then answered
    assert {r.status for r in client.runs.get_many(ids)} == {"succeeded"}


def _claimed(client: Client, n: int) -> list[Any]:
    client.templates.upsert(
        template("t-done", [{"kind": "python", "name": "x", "handler": "x"}], max_attempts=1)
    )
    client.runs.create_many([{"template": "t-done"} for _ in range(n)])
    return client.runs.claim("w1", lanes="A", limit=n)


def test_a_completion_is_sent_until_the_database_takes_it(client: Client, faults: Faults) -> None:
    [run] = _claimed(client, 1)
    faults.refuse("complete_runs", 3)  # down for longer than the transport's own retries
    completer = Completer(Client(faults), "w1")
    item = completer.complete(Completion(run_id=run.id, attempt=1, status="succeeded"))
    assert item.ok and item.status == "succeeded"
    assert client.runs.get(run.id).status == "succeeded"


def test_a_completion_whose_reply_was_lost_is_recorded_once(
    client: Client, faults: Faults, db_url: str
) -> None:
    [run] = _claimed(client, 1)
    faults.lose("complete_runs")
    completer = Completer(Client(faults), "w1")
    item = completer.complete(
        Completion(
            run_id=run.id,
            attempt=1,
            status="succeeded",
            events=[CompletionEvent(kind="log", message="the last line")],
        )
    )
    assert item.ok  # the repeat is answered as recorded
    assert faults.sent.count("complete_runs") == 2
    with psycopg.connect(db_url) as conn:
        kinds = conn.execute(
            "select kind from public.run_events where run_id = %s order by seq", (run.id,)
        ).fetchall()
    assert [k for (k,) in kinds] == ["claimed", "log", "succeeded"]  # its events written once


def _kinds(db_url: str, run_id: Any) -> list[str]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "select kind from public.run_events where run_id = %s order by seq", (run_id,)
        ).fetchall()
    return [k for (k,) in rows]


def test_a_failure_that_scheduled_a_retry_and_whose_reply_was_lost_is_recorded_once(
    client: Client, faults: Faults, db_url: str
) -> None:
    # The failure put the run back to queued; the resend used to be answered "lease lost".
    client.templates.upsert(
        template("t-again", [{"kind": "python", "name": "x", "handler": "x"}], max_attempts=3,
                 retry_backoff_seconds=0, retry_backoff_max_seconds=0, retry_jitter=0)
    )
    client.runs.create_many([{"template": "t-again"}])
    [run] = client.runs.claim("w1", lanes="A", limit=1)
    faults.lose("complete_runs")
    completer = Completer(Client(faults), "w1")
    item = completer.complete(
        Completion(run_id=run.id, attempt=1, status="failed", error="boom",
                   events=[CompletionEvent(kind="log", message="the last line")])
    )
    assert faults.sent.count("complete_runs") == 2
    assert item.ok and item.status == "queued" and item.retry_at is not None
    assert _kinds(db_url, run.id) == ["claimed", "log", "retry_scheduled"]  # each once


def test_a_worker_whose_retry_reply_was_lost_writes_no_false_lease_lost(
    client: Client, faults: Faults, db_url: str
) -> None:
    client.templates.upsert(
        template("t-flaky", [{"kind": "shell", "name": "fail",
                              "command": ["sh", "-c", "echo the last line; exit 3"]}],
                 max_attempts=2, retry_backoff_seconds=0, retry_backoff_max_seconds=0,
                 retry_jitter=0)
    )
    [created] = client.runs.create_many([{"template": "t-flaky"}])
    faults.lose("complete_runs")  # the reply to attempt 1's failure (a retry) is lost

    worker = _worker(Client(faults))
    assert worker.run() == 0

    final = client.runs.get(created.id)
    assert (final.status, final.attempt) == ("failed", 2)
    kinds = _kinds(db_url, created.id)
    assert "lease_lost" not in kinds, kinds
    assert kinds.count("retry_scheduled") == 1
    events = client.events.list(created.id)
    assert [e.attempt for e in events if "the last line" in e.message] == [1, 2]  # not resent
    assert "lease_lost" not in worker.endings


def test_only_a_forced_stop_gives_up_on_a_completion(client: Client, faults: Faults) -> None:
    [run] = _claimed(client, 1)
    faults.refuse("complete_runs", 10**6)
    give_up = threading.Event()
    completer = Completer(Client(faults), "w1", give_up=give_up)
    out: list[BaseException] = []

    def finish() -> None:
        try:
            completer.complete(Completion(run_id=run.id, attempt=1, status="succeeded"))
        except TransportError as e:
            out.append(e)

    t = threading.Thread(target=finish)
    t.start()
    t.join(1.0)
    assert t.is_alive(), "still trying while the worker is not forced to stop"
    give_up.set()
    t.join(10)
    assert not t.is_alive() and len(out) == 1
    assert client.runs.get(run.id).status == "running"


def test_an_append_whose_reply_was_lost_is_not_stored_twice(
    client: Client, faults: Faults, db_url: str
) -> None:
    runs = [str(r.id) for r in _claimed(client, 2)]
    sink = EventSink(Client(faults), interval=60.0)

    def lines(n: int, first: int = 0) -> None:
        for i in range(first, first + n):
            for run_id in runs:
                sink.add(run_id, "log", "info", "same line", {"i": i}, attempt=1, worker_id="w1")

    lines(3)
    faults.lose("append_run_events")  # stored, but the worker hears a dead connection
    sink.flush()
    lines(3, first=3)  # the same text again: only the seqs tell these apart
    faults.lose("append_run_events")
    faults.refuse("append_run_events")  # and the database is away for the next try too
    sink.flush()
    faults.refuse("append_run_events")  # never sent: must be sent again
    lines(2, first=6)
    sink.flush()
    assert (sink.found_stored, sink.dropped) == (2, 0)
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "select run_id::text, data ->> 'i' from public.run_events where kind = 'log'"
            " order by run_id, seq"
        ).fetchall()
    for run_id in runs:
        assert [int(i) for r, i in rows if r == run_id] == list(range(8))
