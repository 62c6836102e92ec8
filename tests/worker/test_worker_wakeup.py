"""Claiming: LISTEN wake-ups make an idle worker react at once; polling alone is correct."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pulser_ops import Client
from pulser_ops.worker import Worker
from tests.worker.conftest import template, wait_for


@contextmanager
def running(worker: Worker) -> Iterator[Worker]:
    codes: list[int] = []
    t = threading.Thread(target=lambda: codes.append(worker.run()), daemon=True)
    t.start()
    try:
        yield worker
    finally:
        worker.stop()
        t.join(timeout=60)
        assert not t.is_alive() and codes == [0]


def _registered(client: Client, worker_id: str) -> bool:
    return any(w.id == worker_id and w.status == "active" for w in client.workers.list())


def test_notify_wakes_an_idle_worker(client: Client) -> None:
    client.templates.upsert(template("quick", [{"kind": "shell", "command": ["true"]}]))
    # Polling every 10 minutes: only the NOTIFY from enqueue can get the run claimed in time.
    with running(Worker(client, lanes="A", poll_seconds=600, worker_id="listener")):
        wait_for("registration", lambda: _registered(client, "listener"))
        run = client.runs.create("quick", lane="A")
        done = wait_for(
            "the run",
            lambda: (r := client.runs.get(run.id)).status == "succeeded" and r,
            timeout=30,
        )
    assert done.worker_id == "listener"
    assert {w.id: w.status for w in client.workers.list()}["listener"] == "stopped"


def test_polling_alone_claims_work(client: Client) -> None:
    client.templates.upsert(template("quick", [{"kind": "shell", "command": ["true"]}]))
    with running(Worker(client, lanes="A", poll_seconds=0.3, worker_id="poller", listen=False)):
        wait_for("registration", lambda: _registered(client, "poller"))
        runs = client.runs.create_many({"template": "quick"} for _ in range(5))
        for run in runs:
            wait_for("the run", lambda r=run: client.runs.get(r.id).status == "succeeded")


def test_worker_only_claims_its_lanes(client: Client) -> None:
    client.templates.upsert(template("quick", [{"kind": "shell", "command": ["true"]}]))
    mine = client.runs.create("quick", lane="B")
    other = client.runs.create("quick", lane="C")
    assert Worker(client, lanes="B", burst=True, poll_seconds=0.2).run() == 0
    assert client.runs.get(mine.id).status == "succeeded"
    assert client.runs.get(other.id).status == "queued"
