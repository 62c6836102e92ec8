"""Output PostgreSQL text cannot hold, through a real worker into a real database: NUL bytes,
invalid UTF-8, lone surrogates, a 10 MB line. Nothing may be dropped (not the odd run's other
lines, not the lines of a run that shares its event batch, not its log artifact, not its
completion); what cannot be stored as text is shown marked (U+2400 for NUL, U+FFFD for
what is not UTF-8), and the log artifact keeps the raw bytes."""

from __future__ import annotations

from typing import Any

import psycopg

from pulser_ops import Client
from pulser_ops.worker.events import REFUSED_KIND, EventSink
from tests.worker.conftest import burst_worker, template

NOISY = (
    "printf 'before\\n'; "
    "head -c 10000000 /dev/zero | tr '\\000' x; printf '\\n'; "
    "printf 'a\\000b\\n'; "
    "printf 'bad \\377\\376 bytes\\n'; "
    "printf 'after\\n'"
)


def _lines(client: Client, run_id: Any, stream: str) -> list[str]:
    events = client.events.list(run_id, limit=5000)
    return [
        line
        for e in events
        if e.kind == "log" and (e.data or {}).get("stream") == stream
        for line in e.message.split("\n")
    ]


def test_odd_output_is_stored_marked_and_nothing_is_dropped(client: Client) -> None:
    client.templates.upsert(
        template(
            "odd",
            [
                {"kind": "shell", "name": "noisy", "command": NOISY},
                {"kind": "python", "name": "py", "handler": "odd"},
            ],
        )
    )
    client.templates.upsert(
        template("clean", [{"kind": "shell", "name": "count", "command": ["seq", "1", "300"]}])
    )
    odd = client.runs.create("odd")
    clean = client.runs.create("clean")
    worker = burst_worker(client, worker_id="w-odd", listen=False)

    assert worker.run() == 0

    assert client.runs.get(odd.id).status == "succeeded"
    assert client.runs.get(clean.id).status == "succeeded"
    assert worker._sink is not None
    assert (worker._sink.dropped, worker._sink.refused) == (0, 0)
    # The run that shared the odd run's batches lost nothing.
    assert _lines(client, clean.id, "stdout") == [str(i) for i in range(1, 301)]

    out = _lines(client, odd.id, "stdout")
    assert out[0] == "before"
    assert out[1].startswith("xxxx") and out[1].endswith("…[line truncated]")
    assert len(out[1].encode()) < 17 * 1024  # one line, cut: not 10 MB, not 150 pieces
    assert out[2:] == ["a\u2400b", "bad \ufffd\ufffd bytes", "after"]

    handler = [e for e in client.events.list(odd.id) if (e.data or {}).get("stream") == "handler"]
    assert [e.message for e in handler] == ["lone \ufffd and \ufffd, a pair \U0001f600, a nul \u2400"]
    assert handler[0].data["raw"] == "v\u2400\ufffd"

    # The log artifact keeps exactly what the step wrote (its last MiB), as a file.
    log = client.artifacts.get(odd.id, "noisy.log")
    assert (log.kind, log.inline_text, log.content_type) == ("log", None, "text/plain")
    raw = client.artifacts.download(odd.id, "noisy.log")
    assert raw.startswith(b"[\xe2\x80\xa6 ") and b"bytes of earlier output dropped" in raw[:100]
    assert raw.endswith(b"x\na\x00b\nbad \xff\xfe bytes\nafter\n")
    # A python step's text artifact that cannot be text is saved as its bytes.
    assert client.artifacts.download(odd.id, "odd.txt") == b"a\x00b \xff"

    result = client.runs.get(odd.id).result
    assert result is not None and result["result"] == {"text": "nul \u2400 here", "bad": "\ufffd"}
    steps = client.runs.steps(odd.id)
    assert [s.status for s in steps] == ["succeeded", "succeeded"]


def test_a_refused_event_is_replaced_and_its_batch_goes_through(
    client: Client, db_url: str
) -> None:
    # Something the database refuses even after the text is made safe (here a kind it does
    # not accept): only that event is lost, replaced by a note; every other event of the batch,
    # of its own run and of two others, is stored in order.
    client.templates.upsert(template("t-ev", [{"kind": "python", "name": "x", "handler": "x"}]))
    client.runs.create_many([{"template": "t-ev"} for _ in range(3)])
    runs = [str(r.id) for r in client.runs.claim("w1", lanes="A", limit=3)]
    sink = EventSink(client, interval=60.0)
    for i in range(5):
        for run_id in runs:
            kind = "Not A Kind!" if (run_id, i) == (runs[1], 2) else "log"
            sink.add(run_id, kind, "info", f"line {i}", {"i": i}, attempt=1, worker_id="w1")
    sink.flush()
    assert (sink.refused, sink.dropped) == (1, 0)
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "select run_id::text, kind, message, data from public.run_events"
            " where kind <> 'claimed' order by run_id, seq"
        ).fetchall()
    by_run: dict[str, list[tuple[str, str, Any]]] = {}
    for run_id, kind, message, data in rows:
        by_run.setdefault(run_id, []).append((kind, message, data))
    for run_id in (runs[0], runs[2]):
        assert [m for _, m, _ in by_run[run_id]] == [f"line {i}" for i in range(5)]
    kinds = [k for k, _, _ in by_run[runs[1]]]
    assert kinds == ["log", "log", REFUSED_KIND, "log", "log"]
    _, note, data = by_run[runs[1]][2]
    assert "'Not A Kind!'" in note and "kind" in data["error"]
    assert (data["kind"], data["message_start"]) == ("Not A Kind!", "line 2")


def test_a_refused_event_carried_by_a_completion_does_not_fail_it(client: Client) -> None:
    # The run's last events go with its completion; one of them is refused, so the whole
    # completion is. The events then go on their own (the bad one replaced), and the
    # completion again without them.
    client.templates.upsert(
        template("carry", [{"kind": "python", "name": "py", "handler": "bad_kind"}])
    )
    run = client.runs.create("carry")
    worker = burst_worker(client, concurrency=1, worker_id="w-odd", listen=False)

    assert worker.run() == 0

    assert client.runs.get(run.id).status == "succeeded"
    assert worker.endings == {"succeeded": 1}
    kinds = [e.kind for e in client.events.list(run.id)]
    assert kinds == ["claimed", "step", "log", REFUSED_KIND, "log", "step", "succeeded"]
