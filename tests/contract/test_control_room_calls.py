"""The control room's SQL functions over both transports, through the client:
``lanes.board`` (board_snapshot), ``runs.search`` / ``count`` / ``bulk_cancel`` / ``bulk_rerun`` /
``rerun`` / ``run_now`` / ``bulk_run_now``. Same rows, same errors, same RLS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pulser_ops import AlreadyTerminal, Client, Conflict, InvalidInput, InvalidParams, NotFound, Run
from pulser_ops import calls as c
from pulser_ops.models import RunFilter
from tests.contract.conftest import Caller, Env
from tests.contract.helpers import claimed, new_id, template


def test_board_snapshot_counts_lanes_and_shows_running_cards(env: Env, client: Client) -> None:
    template(client)
    for _ in range(3):
        client.runs.create("hello", {"name": "q"}, lane="B")
    run = claimed(client, "w-9")
    client.events.log(run.id, "the <latest> line")
    done = claimed(client, "w-9")
    client.runs.complete(done.id, "w-9", 1, "failed", error="x", retryable=False)
    env.sql("update public.runs set lease_expires_at = now() - interval '1 second' where id = %s",
            (str(run.id),))  # fmt: skip
    snap = client.lanes.board()
    lanes = {lane.lane: lane for lane in snap.lanes}
    assert [lane.lane for lane in snap.lanes] == ["A", "B", "C", "D"]
    assert lanes["B"].queued == 3 and lanes["A"].running == 1
    assert lanes["A"].failed_1h == 1 and sum(lanes["A"].throughput) == 1
    assert sum(lanes["A"].failures) == 1 and len(lanes["A"].throughput) == 60
    [card] = snap.running
    assert card.id == run.id and card.worker_id == "w-9"
    assert card.last_event is not None and card.last_event.message == "the <latest> line"
    assert snap.stuck.count == 1 and snap.stuck.ids == [run.id]


def test_search_filters_and_keyset_pages(env: Env, client: Client) -> None:
    template(client)
    template(client, "other")
    a = [client.runs.create("hello", {"name": f"a{i}"}, lane="A") for i in range(5)]
    needle = client.runs.create("other", {"name": "find-me-please"}, lane="C")
    ex = client.transport.execute
    page1 = client.runs.search(RunFilter(lanes=("A",)), limit=2)
    assert [r.id for r in page1] == [a[4].id, a[3].id]
    cursor = {"created_at": page1[-1].created_at, "id": page1[-1].id}
    page2 = client.runs.search(RunFilter(lanes=("A",), before=cursor), limit=2)
    assert [r.id for r in page2] == [a[2].id, a[1].id]
    assert [r.id for r in client.runs.search({"q": "FIND-ME"}, limit=50)] == [needle.id]
    assert [r.id for r in client.runs.search({"q": str(needle.id)}, limit=50)] == [needle.id]
    assert [r.id for r in client.runs.search({"q": "100%_"}, limit=50)] == []
    assert client.runs.search({"templates": ["other"], "lanes": ["A"]}, limit=50) == []
    later = datetime.now(UTC) + timedelta(hours=1)
    assert client.runs.search({"created_after": later}, limit=50) == []
    with pytest.raises(InvalidInput):
        client.runs.search({"status": ["nope"]}, limit=50)
    raw = c.Call("search_runs", {"filter": c.Arg({"bogus": 1}, "jsonb")}, c.many(Run))
    with pytest.raises(InvalidInput, match="unknown key"):
        ex(raw)  # the SQL checks the filter too, not only the SDK's model


def test_count_is_exact_up_to_the_cap_then_an_estimate(env: Env, client: Client) -> None:
    template(client)
    client.runs.create_many([{"template": "hello", "params": {"name": "n"}} for _ in range(12)])
    exact = client.runs.count(RunFilter())
    assert (exact.runs, exact.exact) == (12, True)
    capped = client.runs.count(RunFilter(), max_exact=5)
    assert capped.exact is False and capped.runs >= 6
    assert client.runs.count({"lanes": ["D"]}).runs == 0


def test_bulk_cancel_previews_caps_and_needs_ids_or_a_filter(env: Env, client: Client) -> None:
    template(client)
    runs = [client.runs.create("hello", {"name": f"{i}"}, lane="C") for i in range(3)]
    preview = client.runs.bulk_cancel(filter={"lanes": ["C"]}, max_runs=2, dry_run=True)
    assert (preview.matched, preview.affected, preview.capped, preview.touched) == (3, 0, True, [])
    assert {client.runs.get(r.id).status for r in runs} == {"queued"}
    done = client.runs.bulk_cancel(filter={"lanes": ["C"]}, max_runs=2, dry_run=False, reason="r")
    assert done.affected == 2 and set(done.touched) == {runs[2].id, runs[1].id}
    assert client.runs.get(runs[0].id).status == "queued"
    again = client.runs.bulk_cancel([r.id for r in runs], max_runs=10, dry_run=False)
    assert again.touched == [runs[0].id]
    with pytest.raises(InvalidInput):
        client.runs.bulk_cancel(filter=None, max_runs=10, dry_run=True)
    with pytest.raises(InvalidInput):
        client.runs.bulk_cancel([runs[0].id], max_runs=0, dry_run=True)


def test_rerun_checks_params_and_links_the_runs(env: Env, client: Client) -> None:
    template(client, max_attempts=1)
    run = claimed(client)
    client.runs.complete(run.id, "w1", 1, "failed", error="boom", retryable=False)
    with pytest.raises(InvalidParams):
        client.runs.rerun(run.id, {"name": ""})
    with pytest.raises(NotFound):
        client.runs.rerun(new_id())
    fresh = client.runs.rerun(run.id, {"name": "again"}, lane="D")
    assert fresh.status == "queued" and fresh.lane == "D" and fresh.params["name"] == "again"
    assert [e.data["rerun_of"] for e in client.events.list(fresh.id) if e.kind == "rerun_of"] == [
        str(run.id)]  # fmt: skip
    bulk = client.runs.bulk_rerun(filter={"status": ["failed"]}, max_runs=10, dry_run=False)
    assert bulk.affected == 1 and bulk.touched[0] != run.id


def test_run_now_makes_a_waiting_run_claimable_and_says_so_on_its_timeline(
    env: Env, client: Client
) -> None:
    template(client, max_attempts=3)
    later = datetime.now(UTC) + timedelta(hours=2)
    waiting = client.runs.create("hello", {"name": "w"}, lane="B", run_after=later)
    assert client.runs.claim("w1", lanes=["B"]) == []
    moved = client.runs.run_now(waiting.id)
    assert moved.status == "queued" and moved.available_at <= datetime.now(UTC)
    [event] = [e for e in client.events.timeline(waiting.id) if e.kind == "run_now"]
    assert "moved to now by" in event.message and event.data["was_due"][:16] == later.isoformat()[:16]
    again = client.runs.run_now(waiting.id)  # already due: nothing changes, no second event
    assert again.available_at == moved.available_at
    assert [e.kind for e in client.events.timeline(waiting.id)] == ["run_now"]
    [claimed_run] = client.runs.claim("w1", lanes=["B"])
    assert claimed_run.id == waiting.id
    with pytest.raises(Conflict, match="is running"):
        client.runs.run_now(waiting.id)
    client.runs.complete(waiting.id, "w1", 1, "succeeded")
    with pytest.raises(AlreadyTerminal):
        client.runs.run_now(waiting.id)
    with pytest.raises(NotFound):
        client.runs.run_now(new_id())


def test_bulk_run_now_moves_retries_waiting_out_their_backoff(env: Env, client: Client) -> None:
    template(client, max_attempts=3, retry_backoff_seconds=3600, retry_backoff_max_seconds=3600)
    runs = [client.runs.create("hello", {"name": f"{i}"}, lane="C") for i in range(3)]
    for run in client.runs.claim("w1", lanes=["C"], limit=3):
        client.runs.complete(run.id, "w1", 1, "failed", error="upstream down")  # waits an hour
    due = client.runs.create("hello", {"name": "due"}, lane="C")  # claimable already: no match
    preview = client.runs.bulk_run_now(filter={"lanes": ["C"]}, max_runs=2, dry_run=True)
    assert (preview.matched, preview.affected, preview.capped) == (3, 0, True)
    done = client.runs.bulk_run_now(filter={"lanes": ["C"]}, max_runs=10)
    assert done.affected == 3 and set(done.touched) == {r.id for r in runs}
    again = {r.id: r.attempt for r in client.runs.claim("w2", lanes=["C"], limit=5)}
    assert again == {**{r.id: 2 for r in runs}, due.id: 1}
    with pytest.raises(InvalidInput):
        client.runs.bulk_run_now(filter=None, max_runs=10, dry_run=True)


def test_operators_search_count_and_act_only_on_their_runs(env: Env, client: Client) -> None:
    template(client)
    me, them = Caller("operator", new_id()), Caller("operator", new_id())
    with env.client(me) as mine_c, env.client(them) as theirs_c:
        mine = mine_c.runs.create("hello", {"name": "m"})
        theirs = theirs_c.runs.create("hello", {"name": "t"})
        assert [r.id for r in mine_c.runs.search(RunFilter(), limit=50)] == [mine.id]
        assert mine_c.runs.count(RunFilter()).runs == 1
        board = mine_c.lanes.board()
        assert {lane.lane: lane.queued for lane in board.lanes}["A"] == 1
        done = mine_c.runs.bulk_cancel(filter={}, max_runs=10, dry_run=False)
        assert done.touched == [mine.id]
        with pytest.raises(NotFound):  # as cancel_run: another's run is not found (no probing)
            mine_c.runs.rerun(theirs.id)
    assert client.runs.get(theirs.id).status == "queued"


def test_timeline_lists_every_lifecycle_event_however_long_the_log(
    env: Env, client: Client
) -> None:
    template(client, max_attempts=2)
    run = claimed(client)
    client.events.append(
        [{"run_id": run.id, "kind": "log", "message": f"line {i}"} for i in range(1200)])
    client.runs.complete(run.id, "w1", 1, "failed", error="flaky")
    [again] = client.runs.claim("w2", lanes=["A"])
    assert again.attempt == 2
    client.runs.cancel(run.id, reason="enough")
    client.runs.complete(run.id, "w2", 2, "cancelled")
    kinds = [e.kind for e in client.events.timeline(run.id)]
    assert kinds == ["claimed", "retry_scheduled", "claimed", "cancel_requested", "cancelled"]
    assert len(client.events.list(run.id)) == 1000  # a first page of the log holds 1 of them
    tail = client.events.last(run.id, limit=6)
    assert [e.message if e.kind == "log" else e.kind for e in tail] == [
        "line 1198", "line 1199", "retry_scheduled", "claimed", "cancel_requested", "cancelled"]
    assert [e.seq for e in tail] == sorted(e.seq for e in tail)
