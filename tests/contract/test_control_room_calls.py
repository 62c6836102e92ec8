"""The control room's SQL functions over both transports: board_snapshot, search_runs,
count_runs, bulk_cancel_runs, bulk_rerun_runs, rerun_run. Same rows, same errors, same RLS.

Called through ``transport.execute(calls.…)`` (the client has no methods for them yet)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pulser_ops import Client, InvalidInput, InvalidParams, NotFound, PermissionDenied, Run
from pulser_ops import calls as c
from pulser_ops.board import RunFilter
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
    snap = client.transport.execute(c.board_snapshot())
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
    page1 = ex(c.search_runs(RunFilter(lanes=("A",)), 2))
    assert [r.id for r in page1] == [a[4].id, a[3].id]
    cursor = {"created_at": page1[-1].created_at, "id": page1[-1].id}
    page2 = ex(c.search_runs(RunFilter(lanes=("A",), before=cursor), 2))
    assert [r.id for r in page2] == [a[2].id, a[1].id]
    assert [r.id for r in ex(c.search_runs({"q": "FIND-ME"}, 50))] == [needle.id]
    assert [r.id for r in ex(c.search_runs({"q": str(needle.id)}, 50))] == [needle.id]
    assert [r.id for r in ex(c.search_runs({"q": "100%_"}, 50))] == []
    assert ex(c.search_runs({"templates": ["other"], "lanes": ["A"]}, 50)) == []
    later = datetime.now(UTC) + timedelta(hours=1)
    assert ex(c.search_runs({"created_after": later}, 50)) == []
    with pytest.raises(InvalidInput):
        ex(c.search_runs({"status": ["nope"]}, 50))
    raw = c.Call("search_runs", {"filter": c.Arg({"bogus": 1}, "jsonb")}, c.many(Run))
    with pytest.raises(InvalidInput, match="unknown key"):
        ex(raw)  # the SQL checks the filter too, not only the SDK's model


def test_count_is_exact_up_to_the_cap_then_an_estimate(env: Env, client: Client) -> None:
    template(client)
    client.runs.create_many([{"template": "hello", "params": {"name": "n"}} for _ in range(12)])
    ex = client.transport.execute
    exact = ex(c.count_runs(RunFilter()))
    assert (exact.runs, exact.exact) == (12, True)
    capped = ex(c.count_runs(RunFilter(), max_exact=5))
    assert capped.exact is False and capped.runs >= 6
    assert ex(c.count_runs({"lanes": ["D"]})).runs == 0


def test_bulk_cancel_previews_caps_and_needs_ids_or_a_filter(env: Env, client: Client) -> None:
    template(client)
    runs = [client.runs.create("hello", {"name": f"{i}"}, lane="C") for i in range(3)]
    ex = client.transport.execute
    preview = ex(c.bulk_cancel_runs(None, {"lanes": ["C"]}, max_runs=2, dry_run=True))
    assert (preview.matched, preview.affected, preview.capped, preview.touched) == (3, 0, True, [])
    assert {client.runs.get(r.id).status for r in runs} == {"queued"}
    done = ex(c.bulk_cancel_runs(None, {"lanes": ["C"]}, max_runs=2, dry_run=False, reason="r"))
    assert done.affected == 2 and set(done.touched) == {runs[2].id, runs[1].id}
    assert client.runs.get(runs[0].id).status == "queued"
    again = ex(c.bulk_cancel_runs([r.id for r in runs], None, max_runs=10, dry_run=False))
    assert again.touched == [runs[0].id]
    with pytest.raises(InvalidInput):
        ex(c.bulk_cancel_runs(None, None, max_runs=10, dry_run=True))
    with pytest.raises(InvalidInput):
        ex(c.bulk_cancel_runs([runs[0].id], None, max_runs=0, dry_run=True))


def test_rerun_checks_params_and_links_the_runs(env: Env, client: Client) -> None:
    template(client, max_attempts=1)
    run = claimed(client)
    client.runs.complete(run.id, "w1", 1, "failed", error="boom", retryable=False)
    ex = client.transport.execute
    with pytest.raises(InvalidParams):
        ex(c.rerun_run(run.id, {"name": ""}))
    with pytest.raises(NotFound):
        ex(c.rerun_run(new_id()))
    fresh = ex(c.rerun_run(run.id, {"name": "again"}, "D"))
    assert fresh.status == "queued" and fresh.lane == "D" and fresh.params["name"] == "again"
    assert [e.data["rerun_of"] for e in client.events.list(fresh.id) if e.kind == "rerun_of"] == [
        str(run.id)]  # fmt: skip
    bulk = ex(c.bulk_rerun_runs(None, {"status": ["failed"]}, max_runs=10, dry_run=False))
    assert bulk.affected == 1 and bulk.touched[0] != run.id


def test_operators_search_count_and_act_only_on_their_runs(env: Env, client: Client) -> None:
    template(client)
    me, them = Caller("operator", new_id()), Caller("operator", new_id())
    with env.client(me) as mine_c, env.client(them) as theirs_c:
        mine = mine_c.runs.create("hello", {"name": "m"})
        theirs = theirs_c.runs.create("hello", {"name": "t"})
        ex = mine_c.transport.execute
        assert [r.id for r in ex(c.search_runs(RunFilter(), 50))] == [mine.id]
        assert ex(c.count_runs(RunFilter())).runs == 1
        board = ex(c.board_snapshot())
        assert {lane.lane: lane.queued for lane in board.lanes}["A"] == 1
        done = ex(c.bulk_cancel_runs(None, {}, max_runs=10, dry_run=False))
        assert done.touched == [mine.id]
        with pytest.raises(PermissionDenied):  # as cancel_run: checked by lock_run_for
            ex(c.rerun_run(theirs.id))
    assert client.runs.get(theirs.id).status == "queued"
