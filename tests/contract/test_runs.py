"""``client.runs``: the run life cycle, over both transports, checked in the results and in the
database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pulser_ops import Client, InvalidInput, RunStatus
from tests.contract.conftest import Env
from tests.contract.helpers import claimed, template


def test_create_fills_defaults_and_get_returns_the_stored_row(env: Env, client: Client) -> None:
    template(client)
    run = client.runs.create("hello", {"name": "ops"}, lane="B", priority=5)
    assert (run.template, run.lane, run.status, run.priority) == ("hello", "B", "queued", 5)
    assert run.params == {"name": "ops", "count": 1}  # schema default filled in
    assert (run.attempt, run.max_attempts, run.version) == (0, 3, 1)
    assert client.runs.get(run.id) == run
    assert env.sql("select status, lane, params::text from public.runs where id = %s",
                   (run.id,)) == [("queued", "B", '{"name": "ops", "count": 1}')]


def test_idempotency_key_returns_the_same_run(env: Env, client: Client) -> None:
    template(client)
    first = client.runs.create("hello", {"name": "a"}, idempotency_key="k-1")
    again = client.runs.create("hello", {"name": "a"}, idempotency_key="k-1")
    assert again == first
    assert env.sql("select count(*) from public.runs") == [(1,)]


def test_create_many_keeps_input_order(env: Env, client: Client) -> None:
    template(client)
    runs = client.runs.create_many(
        [{"template": "hello", "params": {"name": str(i)}, "lane": "C"} for i in range(5)]
    )
    assert [r.params["name"] for r in runs] == ["0", "1", "2", "3", "4"]
    assert {r.lane for r in runs} == {"C"}
    assert sorted(r.id for r in client.runs.get_many([r.id for r in runs])) == sorted(
        r.id for r in runs
    )
    assert env.sql("select count(*) from public.runs where lane = 'C'") == [(5,)]


def test_claim_heartbeat_complete(env: Env, client: Client) -> None:
    template(client)
    low = client.runs.create("hello", {"name": "low"}, priority=-1)
    high = client.runs.create("hello", {"name": "high"}, priority=10)
    [run] = client.runs.claim("w1", lanes=["A"], limit=1, lease_seconds=60)
    assert run.id == high.id  # higher priority first
    assert (run.status, run.attempt, run.worker_id) == ("running", 1, "w1")
    assert run.lease_expires_at is not None

    beat = client.runs.heartbeat(run.id, "w1", 1, lease_seconds=120)
    assert (beat.run_id, beat.attempt, beat.cancel_requested) == (run.id, 1, False)
    assert beat.lease_expires_at > run.lease_expires_at
    [item] = client.runs.heartbeat_many("w1", [(run.id, 1)])
    assert (item.run_id, item.ok) == (run.id, True)

    done = client.runs.complete(run.id, "w1", 1, RunStatus.SUCCEEDED, result={"greeting": "hi"})
    assert (done.status, done.result, done.finished_at is not None) == (
        "succeeded", {"greeting": "hi"}, True)
    assert env.sql("select status, result::text from public.runs where id = %s", (run.id,)) == [
        ("succeeded", '{"greeting": "hi"}')]
    assert client.runs.get(low.id).status == "queued"
    kinds = [e.kind for e in client.events.list(run.id)]
    assert kinds == ["claimed", "succeeded"]


def test_json_results_come_back_as_the_database_stored_them(env: Env, client: Client) -> None:
    # Results reach the models as JSON text parsed by pydantic-core (the direct transport asks
    # for the rows as one json_agg array), not by json.loads: every value must come back exactly
    # as Python's own parser reads the stored text.
    template(client)
    client.runs.create("hello", {"name": "json"})
    [run] = client.runs.claim("w1", lanes=["A"])
    result = {
        "text": 'caf\u00e9 \U0001f680 "quoted" \\ back\nslash',
        "ints": [0, -1, 2**53 + 1, 12345678901234567890123],
        "floats": [0.1, -0.0, 1e-320, 1.7976931348623157e308, 2.5e-5, 0.30000000000000004],
        "nested": {"a": [{"b": None, "c": True}], "": False},
    }
    done = client.runs.complete(run.id, "w1", 1, RunStatus.SUCCEEDED, result=result)
    [(stored,)] = env.sql("select result::text from public.runs where id = %s", (run.id,))
    assert done.result == json.loads(stored) == client.runs.get(run.id).result
    assert done.result["ints"][3] == 12345678901234567890123


def test_failure_with_attempts_left_is_retried(env: Env, client: Client) -> None:
    template(client)
    run = claimed(client)
    again = client.runs.complete(run.id, "w1", 1, "failed", error="boom", error_class="Boom")
    assert (again.status, again.attempt, again.error, again.worker_id) == (
        "queued", 1, "boom", None)
    [second] = client.runs.claim("w2", lanes=["A"])
    assert (second.id, second.attempt, second.worker_id) == (run.id, 2, "w2")
    final = client.runs.complete(run.id, "w2", 2, "failed", error="fatal", retryable=False)
    assert final.status == "failed"
    assert env.sql("select status, attempt from public.runs") == [("failed", 2)]


def test_cancel_queued_and_running(env: Env, client: Client) -> None:
    template(client)
    queued = client.runs.create("hello", {"name": "q"}, lane="B")
    cancelled = client.runs.cancel(queued.id, reason="not needed")
    assert (cancelled.status, cancelled.cancel_reason) == ("cancelled", "not needed")
    running = claimed(client)
    asked = client.runs.cancel(running.id, reason="stop")
    assert asked.status == "running" and asked.cancel_requested
    assert client.runs.heartbeat(running.id, "w1", 1).cancel_requested is True
    assert env.sql("select status, cancel_requested_at is not null from public.runs"
                   " order by created_at") == [("cancelled", True), ("running", True)]


def test_release_gives_the_attempt_back(env: Env, client: Client) -> None:
    template(client)
    run = claimed(client)
    released = client.runs.release(run.id, "w1", 1, reason="shutting down")
    assert (released.status, released.attempt, released.worker_id) == ("queued", 0, None)
    [again] = client.runs.claim("w2", lanes=["A"])
    assert (again.id, again.attempt) == (run.id, 1)


def test_list_filters_and_pages(env: Env, client: Client) -> None:
    template(client)
    template(client, "other")
    made = [client.runs.create("hello", {"name": str(i)}, lane="A" if i % 2 else "B")
            for i in range(7)]
    client.runs.create("other", {"name": "o"}, lane="D")
    everything = client.runs.list(limit=100)
    assert len(everything) == 8
    assert [r.created_at for r in everything] == sorted(
        (r.created_at for r in everything), reverse=True)
    assert {r.id for r in client.runs.list(template="hello")} == {r.id for r in made}
    assert {r.id for r in client.runs.list(lane=["B"])} == {r.id for r in made[::2]}
    assert client.runs.list(status="running") == []
    first = client.runs.list(template="hello", limit=3)
    second = client.runs.list(template="hello", limit=3, after=first[-1].id)
    assert [r.id for r in first + second] == [r.id for r in client.runs.list(template="hello")][:6]
    assert [r.id for r in client.runs.iter(template="hello", limit=3)] == [
        r.id for r in client.runs.list(template="hello")]


async def test_async_iter_pages_like_the_sync_one(env: Env, client: Client) -> None:
    template(client)
    for i in range(7):
        client.runs.create("hello", {"name": str(i)})
    newest_first = [r.id for r in client.runs.list(template="hello")]
    assert len(newest_first) == 7
    async with env.aclient() as ac:
        by_three = [r.id async for r in ac.runs.iter(template="hello", limit=3)]
        # A last page that is exactly full: one more (empty) page ends the iteration.
        by_seven = [r.id async for r in ac.runs.iter(template="hello", limit=7)]
        by_default = [r.id async for r in ac.runs.iter(template="hello")]
        none = [r.id async for r in ac.runs.iter(template="hello", status="running")]
    assert by_three == by_seven == by_default == newest_first
    assert [r.id for r in client.runs.iter(template="hello", limit=3)] == newest_first
    assert none == []


def test_stuck_runs_are_swept(env: Env, client: Client) -> None:
    template(client)
    run = claimed(client)
    env.sql("update public.runs set lease_expires_at = now() - interval '5 minutes',"
            " heartbeat_at = now() - interval '6 minutes' where id = %s", (run.id,))
    stuck = client.runs.stuck()
    assert [s.id for s in stuck] == [run.id]
    assert [r.id for r in client.runs.list(stuck=True)] == [run.id]
    [swept] = client.runs.sweep()
    assert (swept.run_id, swept.action, swept.worker_id) == (run.id, "requeued", "w1")
    assert env.sql("select status, sweep_count from public.runs") == [("queued", 1)]
    assert client.runs.sweep() == []


def test_steps_are_recorded_per_attempt(env: Env, client: Client) -> None:
    template(client)
    run = claimed(client)
    client.runs.record_step(run.id, "w1", 1, 0, "greet", "shell", "running")
    step = client.runs.record_step(run.id, "w1", 1, 0, "greet", "shell", "succeeded",
                                   exit_code=0, output={"stdout": "hi"})
    assert (step.status, step.exit_code, step.output) == ("succeeded", 0, {"stdout": "hi"})
    assert step.finished_at is not None
    client.runs.record_step(run.id, "w1", 1, 1, "call", "http", "failed", error="503")
    assert [(s.idx, s.name, s.status) for s in client.runs.steps(run.id)] == [
        (0, "greet", "succeeded"), (1, "call", "failed")]
    assert env.sql("select count(*) from public.run_steps") == [(2,)]


def test_prune_removes_old_finished_runs_and_their_files(
    env: Env, client: Client, tmp_path: Path
) -> None:
    template(client)
    old = claimed(client)
    client.artifacts.put(old.id, "out/data.bin", b"\x00" * 100)
    client.events.log(old.id, "bye")
    client.runs.complete(old.id, "w1", 1, "succeeded")
    keep = client.runs.create("hello", {"name": "keep"})
    assert any(str(old.id) in path for path, _ in env.state()["files"])
    assert client.runs.prune(timedelta(days=1)) == 0  # finished too recently
    assert client.runs.list(status="succeeded") != []
    assert client.runs.prune(timedelta(0), batch=1) == 1
    assert [r.id for r in client.runs.list()] == [keep.id]
    assert env.sql("select count(*) from public.run_events where run_id = %s", (old.id,)) == [(0,)]
    assert env.sql("select count(*) from public.artifacts") == [(0,)]
    state = env.state()
    assert not any(str(old.id) in name for name in state["storage.objects"])
    assert not any(str(old.id) in path for path, _ in state["files"])
    assert client.runs.prune(0) == 0


def test_delete_removes_finished_runs_with_their_files(env: Env, client: Client) -> None:
    template(client)
    run = claimed(client)
    client.artifacts.put(run.id, "out.bin", b"\x01" * 10)
    client.runs.complete(run.id, "w1", 1, "succeeded")
    other = client.runs.cancel(client.runs.create("hello", {"name": "c"}).id)
    keep = client.runs.create("hello", {"name": "keep"})
    assert client.runs.delete([run.id, other.id]) == 2
    assert [r.id for r in client.runs.list()] == [keep.id]
    state = env.state()
    assert state["public.artifacts"] == [] and state["public.run_steps"] == []
    assert not any(str(run.id) in name for name in state["storage.objects"])
    assert not any(str(run.id) in path for path, _ in state["files"])
    assert client.runs.delete([run.id]) == 0  # already gone


def test_complete_many_fences_each_run_on_its_own(env: Env, client: Client) -> None:
    template(client)
    for i in range(3):
        client.runs.create("hello", {"name": str(i)})
    ok, retried, other = client.runs.claim("w1", lanes=["A"], limit=3)
    stale = claimed(client, "w2")
    items = client.runs.complete_many("w1", [
        {"run_id": ok.id, "attempt": 1, "status": "succeeded", "result": {"n": 1}},
        {"run_id": retried.id, "attempt": 1, "status": "failed", "error": "boom",
         "error_class": "Boom"},
        {"run_id": other.id, "attempt": 1, "status": "failed", "error": "no", "retryable": False},
        {"run_id": stale.id, "attempt": 1, "status": "succeeded"},  # w2 holds it
    ])
    by_id = {i.run_id: i for i in items}
    assert len(by_id) == 4
    assert (by_id[ok.id].ok, by_id[ok.id].status, by_id[ok.id].retry_at) == (True, "succeeded", None)
    assert (by_id[retried.id].ok, by_id[retried.id].status) == (True, "queued")
    assert by_id[retried.id].retry_at is not None
    assert (by_id[other.id].ok, by_id[other.id].status) == (True, "failed")
    assert (by_id[stale.id].ok, by_id[stale.id].status) == (False, "running")
    assert "worker w2" in (by_id[stale.id].detail or "")
    assert env.sql("select id, status, attempt, worker_id, error, result::text from public.runs"
                   " order by created_at") == [
        (ok.id, "succeeded", 1, "w1", None, '{"n": 1}'),
        (retried.id, "queued", 1, None, "boom", None),
        (other.id, "failed", 1, "w1", "no", None),
        (stale.id, "running", 1, "w2", None, None),
    ]
    assert [e.kind for e in client.events.list(retried.id)] == ["claimed", "retry_scheduled"]
    assert [e.message for e in client.events.list(other.id)][-1] == (
        "failed on attempt 1 of 3 (not retryable): no")
    # The same batch again (a lost response, resent): the recorded ones stay ok, nothing moves.
    again = client.runs.complete_many("w1", [
        {"run_id": ok.id, "attempt": 1, "status": "succeeded"}])
    assert [(i.ok, i.status) for i in again] == [(True, "succeeded")]
    assert env.sql("select count(*) from public.run_events where run_id = %s", (ok.id,)) == [(2,)]
    assert client.runs.complete_many("w1", []) == []


def test_a_step_row_first_written_with_the_completion_keeps_its_start_time(
    env: Env, client: Client
) -> None:
    # A worker skips the last step's "running" row when the step ends at once; the final row
    # then says when the step started. A row that already exists keeps its own start.
    template(client)
    fresh, known = claimed(client, "w1"), claimed(client, "w1")
    client.runs.record_step(known.id, "w1", 1, 0, "greet", "shell", "running")
    [(known_start,)] = env.sql("select started_at from public.run_steps where run_id = %s",
                               (known.id,))
    began = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    row = {"idx": 0, "name": "greet", "kind": "shell", "status": "succeeded", "started_at": began}
    items = client.runs.complete_many("w1", [
        {"run_id": fresh.id, "attempt": 1, "status": "succeeded", "steps": [row]},
        {"run_id": known.id, "attempt": 1, "status": "succeeded", "steps": [row]},
    ])
    assert [i.ok for i in items] == [True, True]
    assert env.sql("select run_id, started_at, status from public.run_steps order by started_at") == [
        (fresh.id, began, "succeeded"), (known.id, known_start, "succeeded")]
    again = claimed(client, "w1")
    with pytest.raises(InvalidInput):
        client.runs.complete_many("w1", [{"run_id": again.id, "attempt": 1, "status": "succeeded",
                                          "steps": [{**row, "started_at": "yesterday-ish"}]}])
    assert client.runs.get(again.id).status == "running"  # nothing written


def test_complete_many_writes_carried_events_before_the_terminal_one(
    env: Env, client: Client
) -> None:
    # A worker sends a run's last log lines with its completion instead of appending them first.
    template(client)
    mine, theirs = claimed(client, "w1"), claimed(client, "w2")
    client.events.append([{"run_id": mine.id, "kind": "log", "message": "early"}])
    carried = [{"kind": "step", "message": "step 'greet' finished", "data": {"exit_code": 0}},
               {"kind": "log", "level": "warn", "message": "late \u00e9"}]
    items = client.runs.complete_many("w1", [
        {"run_id": mine.id, "attempt": 1, "status": "succeeded", "events": carried},
        {"run_id": theirs.id, "attempt": 1, "status": "succeeded", "events": carried},
    ])
    assert {i.run_id: i.ok for i in items} == {mine.id: True, theirs.id: False}
    assert [(e.seq, e.kind, e.level, e.message, e.data, e.attempt, e.worker_id)
            for e in client.events.list(mine.id)][1:] == [
        (2, "log", "info", "early", None, None, None),
        (3, "step", "info", "step 'greet' finished", {"exit_code": 0}, 1, "w1"),
        (4, "log", "warn", "late \u00e9", None, 1, "w1"),
        (5, "succeeded", "info", "succeeded on attempt 1", {"error_class": None}, 1, "w1"),
    ]
    assert [e.kind for e in client.events.list(theirs.id)] == ["claimed"]  # refused: nothing
    # Resent after a lost response: still ok, and the events are not written twice.
    again = client.runs.complete_many("w1", [
        {"run_id": mine.id, "attempt": 1, "status": "succeeded", "events": carried}])
    assert [i.ok for i in again] == [True]
    assert len(client.events.list(mine.id)) == 5
    with pytest.raises(InvalidInput, match=r"runs\[0\]\.events: event 0: kind 'Bad'"):
        client.runs.complete_many("w2", [{"run_id": theirs.id, "attempt": 1,
                                          "status": "succeeded", "events": [{"kind": "Bad"}]}])
    assert client.runs.get(theirs.id).status == "running"  # nothing written


def test_complete_many_writes_step_rows_only_for_runs_it_completes(env: Env, client: Client) -> None:
    template(client)
    mine = claimed(client, "w1")
    theirs = claimed(client, "w2")
    rows = [{"idx": 0, "name": "greet", "kind": "shell", "status": "succeeded", "exit_code": 0,
             "output": {"result": "hi"}},
            {"idx": 1, "name": "after", "kind": "python", "status": "skipped"}]
    items = client.runs.complete_many("w1", [
        {"run_id": mine.id, "attempt": 1, "status": "succeeded", "steps": rows},
        {"run_id": theirs.id, "attempt": 1, "status": "succeeded", "steps": rows[:1]},
    ])
    assert {i.run_id: i.ok for i in items} == {mine.id: True, theirs.id: False}
    assert env.sql("select run_id, attempt, idx, status, exit_code, output::text,"
                   " finished_at is not null from public.run_steps order by run_id, idx") == [
        (mine.id, 1, 0, "succeeded", 0, '{"result": "hi"}', True),
        (mine.id, 1, 1, "skipped", None, None, True),
    ]


def test_get_on_behalf_of_answers_only_runs_of_the_same_owner(env: Env, client: Client) -> None:
    """A worker (service role) reads another run only as that run's owner could: a run of the
    same owner is returned, another owner's run or one that does not exist is NotFound alike,
    and an operator may not ask at all (the rule is get_run_on_behalf_of's, in SQL)."""
    from pulser_ops import NotFound, PermissionDenied
    from tests.contract.conftest import Caller
    from tests.contract.helpers import new_id

    template(client)
    me, them = Caller("operator", new_id()), Caller("operator", new_id())
    with env.client(me) as mine, env.client(them) as theirs:
        working = mine.runs.create("hello", {"name": "validate"})
        source = mine.runs.create("hello", {"name": "generate"})
        other = theirs.runs.create("hello", {"name": "not yours"})
        assert client.runs.get(source.id, on_behalf_of=working.id) == source
        with pytest.raises(NotFound) as refused:
            client.runs.get(other.id, on_behalf_of=working.id)
        nowhere = new_id()
        with pytest.raises(NotFound) as missing:
            client.runs.get(nowhere, on_behalf_of=working.id)
        # the same answer, word for word, as for an id that does not exist: no probing
        assert str(refused.value).replace(str(other.id), "ID") == str(missing.value).replace(
            str(nowhere), "ID"
        )
        with pytest.raises(PermissionDenied):
            mine.runs.get(source.id, on_behalf_of=working.id)
    # runs enqueued by the service role have no owner: they are each other's
    a = client.runs.create("hello", {"name": "a"})
    b = client.runs.create("hello", {"name": "b"})
    assert client.runs.get(a.id, on_behalf_of=b.id) == a
    with pytest.raises(NotFound):
        client.runs.get(source.id, on_behalf_of=a.id)
