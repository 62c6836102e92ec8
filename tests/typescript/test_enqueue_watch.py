"""enqueue.ts and watch.ts with Node against the stand-in: an app enqueues with an idempotency
key, and follows a run's status and log live through Realtime (supabase-js' default protocol,
vsn 2.0.0), catching up after its socket was dropped."""

from __future__ import annotations

import json
import queue
import threading
import uuid
from typing import IO, Any

from pulser_ops import Client
from tests.typescript.conftest import Node
from tests.worker.conftest import WorkerProcess, template


def last_line(text: str) -> str:
    """What the example printed last (supabase-js may warn before it, e.g. on Node 18)."""
    return text.strip().splitlines()[-1]


def _noop(client: Client) -> None:
    client.templates.upsert(template("ts-noop", [{"kind": "python", "name": "n",
                                                  "handler": "noop"}]))


def test_enqueue_is_idempotent_with_a_key(node: Node, client: Client) -> None:
    _noop(client)
    first = node.enqueue("ts-noop", '{"order": 4711}', "--key", "order-4711", "--lane", "B")
    again = node.enqueue("ts-noop", '{"order": 4711}', "--key", "order-4711", "--lane", "B")
    assert again["id"] == first["id"]
    assert (first["status"], first["lane"], first["params"]) == ("queued", "B", {"order": 4711})
    assert [str(r.id) for r in client.runs.list(template="ts-noop")] == [first["id"]]

    other = node.run("enqueue", "ts-noop", '{"order": 4712}', "--key", "order-4711")
    assert other.returncode == 1
    assert last_line(other.stderr).startswith(
        "enqueue: PO409: idempotency key order-4711 was already used")
    assert len(client.runs.list(template="ts-noop")) == 1

    unknown = node.run("enqueue", "no-such-template")
    assert (unknown.returncode, last_line(unknown.stderr)) == (
        1, "enqueue: PO404: unknown template no-such-template")


def test_an_operator_enqueues_as_themselves(node: Node, client: Client) -> None:
    """With a user's JWT (and the publishable key) the run is the user's, and RLS applies."""
    _noop(client)
    alice = str(uuid.uuid4())
    run = node.enqueue("ts-noop", "--key", "k1", token=node.sb.user_token(alice))
    assert run["owner_id"] == alice
    # The same key is per owner: another user gets a run of their own.
    bob_run = node.enqueue("ts-noop", "--key", "k1", token=node.sb.user_token(str(uuid.uuid4())))
    assert bob_run["id"] != run["id"]


class Lines:
    """watch.js' stdout, one parsed JSON line at a time."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.q: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.all: list[dict[str, Any]] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self.q.put(json.loads(raw))
        self.q.put(None)

    def until(self, what: str, match: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
        """The first line (printed so far or next) that has ``match``'s items: a run's change and
        the events of the same transaction may come in either order."""
        for line in self.all:
            if match.items() <= line.items():
                return line
        while True:
            try:
                line = self.q.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"watch printed no {what}; so far: {self.all}") from None
            if line is None:
                raise AssertionError(f"watch ended before {what}; printed: {self.all}")
            self.all.append(line)
            if match.items() <= line.items():
                return line


def _finish(proc: WorkerProcess, lines: Lines) -> int:
    code = proc.wait(60)
    while (line := lines.q.get(timeout=30)) is not None:
        lines.all.append(line)
    return code


def test_watch_follows_status_and_log_and_catches_up_after_a_reconnect(
    node: Node, client: Client
) -> None:
    _noop(client)
    alice = str(uuid.uuid4())
    token = node.sb.user_token(alice)
    run = node.enqueue("ts-noop", token=token)
    run_id = run["id"]
    # Only Realtime (and the catch-ups it triggers) can deliver here: the slow safety poll is
    # turned off. The operator sees their own run under RLS.
    watch = node.spawn("watch", run_id, name="watch", token=token,
                       env={"PULSER_WATCH_POLL_SECONDS": "3600"})
    assert watch.proc.stdout is not None
    lines = Lines(watch.proc.stdout)
    lines.until("the queued run", {"type": "run", "status": "queued"})
    joins = node.sb.realtime_joins
    assert [c.serializer.vsn for c in node.sb.app.realtime.connections] == ["2.0.0"]

    [claimed] = client.runs.claim("py-worker", limit=1)
    lines.until("the claim", {"type": "run", "status": "running", "attempt": 1})
    lines.until("the claimed event", {"type": "event", "kind": "claimed"})
    client.events.append([{"run_id": run_id, "kind": "log", "message": f"line {i}",
                           "attempt": 1, "worker_id": "py-worker"} for i in range(3)])
    lines.until("the live log", {"type": "event", "message": "line 2"})

    # Drop the socket; what happens while it is down arrives through the catch-up.
    assert node.sb.drop_realtime_connections() == 1
    client.events.append([{"run_id": run_id, "kind": "log", "message": f"offline {i}",
                           "attempt": 1, "worker_id": "py-worker"} for i in range(5)])
    client.runs.complete(run_id, "py-worker", claimed.attempt, "succeeded", result={"ok": 1})
    assert _finish(watch, lines) == 0, watch.output()
    assert node.sb.realtime_joins > joins  # it did reconnect and rejoin

    events = [line for line in lines.all if line["type"] == "event"]
    stored = client.events.list(run_id)
    assert [e["seq"] for e in events] == [e.seq for e in stored]  # all of them, once, in order
    assert [e["message"] for e in events] == [e.message for e in stored]
    statuses = [(line["status"], line["version"]) for line in lines.all if line["type"] == "run"]
    assert [s for s, _ in statuses] == ["queued", "running", "succeeded"]
    assert [v for _, v in statuses] == sorted({v for _, v in statuses})


def test_watch_of_a_run_that_already_ended_prints_it_and_exits(node: Node,
                                                               client: Client) -> None:
    _noop(client)
    run = client.runs.create("ts-noop")
    client.runs.cancel(run.id, "not needed")
    done = node.run("watch", str(run.id))
    assert done.returncode == 1, done.stderr  # cancelled: not a success
    printed = [json.loads(line) for line in done.stdout.splitlines()]
    assert printed[0] == {"type": "run", "status": "cancelled", "attempt": 0,
                          "version": client.runs.get(run.id).version}
    assert [p["kind"] for p in printed[1:]] == [e.kind for e in client.events.list(run.id)]


def test_watch_of_another_users_run_is_not_found(node: Node, client: Client) -> None:
    _noop(client)
    run = client.runs.create("ts-noop")
    done = node.run("watch", str(run.id), token=node.sb.user_token(str(uuid.uuid4())))
    assert done.returncode == 2
    assert last_line(done.stderr).startswith("watch: PO404"), done.stderr

