"""The worker's group commit of completions, against real PostgreSQL: threads that finish
together share complete_many calls, each run is still fenced on its own, and one run the
database refuses does not take the others down with it."""

from __future__ import annotations

import threading
from typing import Any

import psycopg

from pulser_ops import Client, Completion, InvalidInput
from pulser_ops.models import CompleteBatchItem
from pulser_ops.worker.completer import Completer
from tests.worker.conftest import template


def _claimed(client: Client, n: int, worker: str = "w1") -> list[Any]:
    client.templates.upsert(template("t-done", [{"kind": "python", "name": "x", "handler": "x"}],
                                     max_attempts=3))
    client.runs.create_many([{"template": "t-done"} for _ in range(n)])
    return client.runs.claim(worker, lanes="A", limit=n)


def _counting(client: Client) -> list[int]:
    """Batch sizes of every complete_many call the client makes (the calls still run)."""
    sizes: list[int] = []
    real = client.runs.complete_many

    def spy(worker_id: str, completions: Any) -> list[CompleteBatchItem]:
        items = list(completions)
        sizes.append(len(items))
        return real(worker_id, items)

    client.runs.complete_many = spy  # type: ignore[method-assign]
    return sizes


def test_threads_finishing_together_all_land(client: Client, db_url: str) -> None:
    runs = _claimed(client, 40)
    sizes = _counting(client)
    completer = Completer(client, "w1")
    results: dict[str, CompleteBatchItem] = {}
    gate = threading.Barrier(len(runs))

    def finish(run: Any) -> None:
        gate.wait()
        results[str(run.id)] = completer.complete(
            Completion(run_id=run.id, attempt=1, status="succeeded", result={"i": str(run.id)}))

    threads = [threading.Thread(target=finish, args=(r,)) for r in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted(str(r.id) for r in runs)
    assert all(i.ok and i.status == "succeeded" for i in results.values())
    assert sum(sizes) == 40
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "select count(*), count(*) filter (where result ->> 'i' = id::text)"
            " from public.runs where status = 'succeeded'").fetchone()
        assert rows == (40, 40)
        kinds = conn.execute("select kind, count(*) from public.run_events group by 1 order by 1")
        assert kinds.fetchall() == [("claimed", 40), ("succeeded", 40)]


def test_completions_queued_behind_a_call_in_flight_go_in_one_call(client: Client) -> None:
    runs = _claimed(client, 25)
    sizes = _counting(client)
    completer = Completer(client, "w1")
    completer._sending = True
    threads = [threading.Thread(target=completer.complete, args=(
        Completion(run_id=r.id, attempt=1, status="succeeded"),)) for r in runs]
    for t in threads:
        t.start()
    while len(completer._pending) < len(runs):
        threading.Event().wait(0.01)
    completer._send_until_empty()
    for t in threads:
        t.join()
    assert sizes == [25]
    assert {r.status for r in client.runs.get_many([r.id for r in runs])} == {"succeeded"}


def test_a_fenced_run_comes_back_not_ok_and_the_others_complete(client: Client) -> None:
    mine, stolen = _claimed(client, 2)
    client.runs.release(stolen.id, "w1", 1)
    [again] = client.runs.claim("w2", lanes="A")
    assert again.id == stolen.id
    completer = Completer(client, "w1")
    out: list[CompleteBatchItem] = []
    lock = threading.Lock()

    def finish(run_id: Any) -> None:
        item = completer.complete(Completion(run_id=run_id, attempt=1, status="succeeded"))
        with lock:
            out.append(item)

    threads = [threading.Thread(target=finish, args=(r,)) for r in (mine.id, stolen.id)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    by_id = {i.run_id: i for i in out}
    assert (by_id[mine.id].ok, by_id[mine.id].status) == (True, "succeeded")
    assert (by_id[stolen.id].ok, by_id[stolen.id].status) == (False, "running")
    assert "worker w2" in (by_id[stolen.id].detail or "")
    assert client.runs.get(stolen.id).worker_id == "w2"


def test_one_refused_completion_does_not_fail_the_batch(client: Client) -> None:
    good, bad = _claimed(client, 2)
    completer = Completer(client, "w1")
    # Hold the lead so both completions queue up and go in one batch.
    completer._sending = True
    outcomes: dict[str, Any] = {}

    def finish(name: str, c: Completion) -> None:
        try:
            outcomes[name] = completer.complete(c)
        except InvalidInput as e:
            outcomes[name] = e

    threads = [
        threading.Thread(target=finish, args=("good", Completion(
            run_id=good.id, attempt=1, status="succeeded"))),
        threading.Thread(target=finish, args=("bad", Completion(
            run_id=bad.id, attempt=1, status="failed", error="x" * 70_000))),
    ]
    for t in threads:
        t.start()
    while len(completer._pending) < 2:
        threading.Event().wait(0.01)
    completer._send_until_empty()
    for t in threads:
        t.join()
    assert isinstance(outcomes["good"], CompleteBatchItem) and outcomes["good"].ok
    assert isinstance(outcomes["bad"], InvalidInput)
    assert client.runs.get(good.id).status == "succeeded"
    assert client.runs.get(bad.id).status == "running"


def test_a_lone_completion_goes_out_at_once(client: Client) -> None:
    [run] = _claimed(client, 1)
    item = Completer(client, "w1").complete(
        Completion(run_id=run.id, attempt=1, status="failed", error="boom"))
    assert (item.ok, item.status, item.retry_at is not None) == (True, "queued", True)
