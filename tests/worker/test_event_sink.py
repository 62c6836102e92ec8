"""The worker's event sink against real PostgreSQL: a run that ends waits only for its own
events, finds them in run_events when flush_run returns, and runs that end together share
an append."""

from __future__ import annotations

import threading
from typing import Any

import psycopg

from pulser_ops import Client
from pulser_ops.worker.events import EventSink
from tests.worker.conftest import template


def _runs(client: Client, n: int) -> list[Any]:
    client.templates.upsert(template("t-ev", [{"kind": "python", "name": "x", "handler": "x"}]))
    client.runs.create_many([{"template": "t-ev"} for _ in range(n)])
    return client.runs.claim("w1", lanes="A", limit=n)


def test_flush_run_returns_once_that_runs_events_are_stored(client: Client, db_url: str) -> None:
    runs = _runs(client, 12)
    calls: list[int] = []
    real = client.events.append

    def spy(events: Any) -> Any:
        batch = list(events)
        calls.append(len(batch))
        return real(batch)

    client.events.append = spy  # type: ignore[method-assign]
    sink = EventSink(client, interval=60.0)  # only flush_run wakes the flusher
    sink.start()
    seen: dict[str, int] = {}
    gate = threading.Barrier(len(runs))

    def finish(run: Any) -> None:
        rid = str(run.id)
        for i in range(3):
            sink.add(rid, "log", "info", f"line {i}", attempt=1, worker_id="w1")
        gate.wait()
        sink.flush_run(rid)
        with psycopg.connect(db_url) as conn:  # stored by the time flush_run returned
            seen[rid] = conn.execute(
                "select count(*) from public.run_events where run_id = %s and kind = 'log'",
                (run.id,)).fetchone()[0]  # type: ignore[index]

    threads = [threading.Thread(target=finish, args=(r,)) for r in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sink.close()
    assert seen == {str(r.id): 3 for r in runs}
    assert sum(calls) == 36
    assert len(calls) < len(runs)  # runs that ended together shared appends
    assert sink.dropped == 0


def test_flush_run_with_nothing_pending_returns_at_once(client: Client) -> None:
    [run] = _runs(client, 1)
    sink = EventSink(client, interval=60.0)
    sink.start()
    sink.flush_run(str(run.id))  # nothing buffered: no wait, no call
    sink.add(str(run.id), "log", "info", "late", attempt=1, worker_id="w1")
    sink.close()  # close still sends what is left
    assert [e.message for e in client.events.list(run.id) if e.kind == "log"] == ["late"]
