"""Live changes over both transports (LISTEN/NOTIFY, Supabase Realtime): typed ``Change``s, run
versions never going backwards, and events in ``seq`` order without gaps."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

import pytest

from pulser_ops import Change, Client, InvalidInput, PermissionDenied, Run, RunEvent
from pulser_ops.subscribe import subscribe
from tests.contract.conftest import ANON, Caller, Env
from tests.contract.helpers import claimed, new_id, template
from tests.contract.subs import Collector, event_seqs, feeds_ready, run_versions

#: Longer than any test: changes must come through the feed, not the silence watchdog.
NO_WATCHDOG = 3600.0


def _strictly_increasing(xs: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(xs))


async def test_changes_after_subscribing_arrive_as_typed_changes(
    env: Env, client: Client
) -> None:
    template(client)
    async with env.aclient() as ac:
        got = Collector(subscribe(ac, runs=True, watchdog_seconds=NO_WATCHDOG))
        try:
            # Make sure the feed is live: a run created now arrives (by catch-up or feed).
            first = await asyncio.to_thread(client.runs.create, "hello", {"name": "first"})
            await got.until(lambda xs: run_versions(xs, first.id) != [], "the first run")
            run = await asyncio.to_thread(client.runs.create, "hello", {"name": "live"})
            await got.until(lambda xs: run_versions(xs, run.id) != [], "the new run")
            [claimed_run] = await asyncio.to_thread(client.runs.claim, "w1", lanes=["A"], limit=1)
            done = await asyncio.to_thread(
                client.runs.complete, claimed_run.id, "w1", 1, "succeeded"
            )
            final = await asyncio.to_thread(client.runs.get, run.id)
            await got.until(
                lambda xs: final.version in run_versions(xs, run.id)
                and done.version in run_versions(xs, done.id),
                "the final versions",
            )
        finally:
            await got.close()
    for change in got.items:
        assert isinstance(change, Change)
        assert change.table == "runs" and isinstance(change.run, Run)
        assert change.kind in ("INSERT", "UPDATE", "SNAPSHOT")
    assert _strictly_increasing(run_versions(got.items, run.id))
    assert run_versions(got.items, run.id)[-1] == final.version
    assert got.items[-1].run is not None and got.items[-1].run.status in ("succeeded", "queued")


async def test_events_arrive_in_seq_order_without_gaps(env: Env, client: Client) -> None:
    template(client)
    run = claimed(client)
    client.events.log(run.id, "before subscribing")
    async with env.aclient() as ac:
        got = Collector(ac.subscribe(events=run.id, runs=[run.id]))
        try:
            await got.until(lambda xs: event_seqs(xs) == [1, 2], "the earlier events")
            for i in range(10):
                await asyncio.to_thread(client.events.log, run.id, f"line {i}")
            await asyncio.to_thread(client.events.append, [
                {"run_id": run.id, "kind": "log", "message": f"batch {i}"} for i in range(5)])
            await asyncio.to_thread(client.runs.complete, run.id, "w1", 1, "succeeded")
            last = (await asyncio.to_thread(client.events.list, run.id))[-1].seq
            await got.until(lambda xs: last in event_seqs(xs), f"event {last}")
        finally:
            await got.close()
    assert event_seqs(got.items) == list(range(1, last + 1))
    events = [c.event for c in got.items if c.event is not None]
    assert all(isinstance(e, RunEvent) for e in events)
    assert [e.message for e in events[2:12]] == [f"line {i}" for i in range(10)]
    assert _strictly_increasing(run_versions(got.items, run.id))


async def test_operator_sees_only_own_runs(env: Env, client: Client) -> None:
    template(client)
    me, other = Caller("operator", new_id()), Caller("operator", new_id())
    with env.client(me) as mine, env.client(other) as theirs:
        async with env.aclient(me) as ac:
            got = Collector(subscribe(ac, runs=True, watchdog_seconds=NO_WATCHDOG))
            try:
                hidden = await asyncio.to_thread(theirs.runs.create, "hello", {"name": "t"})
                visible = await asyncio.to_thread(mine.runs.create, "hello", {"name": "m"})
                await asyncio.to_thread(mine.runs.cancel, visible.id)
                final = await asyncio.to_thread(mine.runs.get, visible.id)
                await got.until(lambda xs: final.version in run_versions(xs, visible.id),
                                "my cancelled run")
            finally:
                await got.close()
    assert run_versions(got.items, hidden.id) == []
    assert {str(c.run.owner_id) for c in got.items if c.run} == {me.sub}


def test_sync_subscription_helper(env: Env, client: Client) -> None:
    template(client)
    run = client.runs.create("hello", {"name": "sync"})
    with client.subscribe(runs=[run.id], events=run.id) as sub:
        first = sub.next(timeout=60)
        assert first is not None and first.run is not None and first.run.id == run.id
        [claimed_run] = client.runs.claim("w1", lanes=["A"])
        client.events.log(run.id, "working")
        client.runs.complete(run.id, "w1", claimed_run.attempt, "succeeded")
        items = [first]
        while not any(c.run and c.run.status == "succeeded" for c in items) or (
            event_seqs(items) != [1, 2, 3]
        ):
            nxt = sub.next(timeout=60)
            assert nxt is not None, f"stalled after {[(c.table, c.kind) for c in items]}"
            items.append(nxt)
    assert _strictly_increasing(run_versions(items, run.id))
    assert event_seqs(items) == [1, 2, 3]  # claimed, working, succeeded


def _age(env: Env, run_id: object) -> None:
    """Make a run look last changed half an hour ago (its stamping trigger sets ``now()``)."""
    env.sql(
        "begin; alter table public.runs disable trigger runs_stamp;"
        f" update public.runs set updated_at = now() - interval '30 minutes' where id = '{run_id}';"
        " alter table public.runs enable trigger runs_stamp; commit;"
    )


def test_sync_subscription_catches_up_since(env: Env, client: Client) -> None:
    template(client)
    old = client.runs.create("hello", {"name": "old"})
    _age(env, old.id)
    # The catch-up runs before any pushed change is delivered, and without ``since`` it would
    # start a few seconds ago, after the old run's last change: only ``since`` brings it first.
    with client.subscribe(runs=True, since=datetime.now(UTC) - timedelta(hours=1)) as sub:
        first = sub.next(timeout=60)
    assert first is not None and first.kind == "SNAPSHOT"
    assert first.run is not None and first.run.id == old.id


async def test_async_subscription_catches_up_since(env: Env, client: Client) -> None:
    template(client)
    old = client.runs.create("hello", {"name": "old"})
    _age(env, old.id)
    async with env.aclient() as ac:
        got = Collector(ac.subscribe(runs=True, since=datetime.now(UTC) - timedelta(hours=1)))
        try:
            await got.until(lambda xs: run_versions(xs, old.id) != [], "the old run")
        finally:
            await got.close()
    assert got.items[0].kind == "SNAPSHOT"
    assert got.items[0].run is not None and got.items[0].run.id == old.id


async def test_bad_subscriptions_raise_typed_errors(env: Env, client: Client) -> None:
    before = env.state()
    async with env.aclient() as ac:
        with pytest.raises(InvalidInput) as err:
            await anext(ac.subscribe())
        assert err.value.code == "invalid_input"
        with pytest.raises(InvalidInput):
            await anext(ac.subscribe(events="not-a-run-id"))
        with pytest.raises(InvalidInput):
            await anext(ac.subscribe(runs=["not-a-run-id"]))
    with pytest.raises(InvalidInput, match="events: not a uuid"):
        client.subscribe(events="not-a-run-id")  # refused before any thread or connection
    with pytest.raises(InvalidInput, match="lanes"):
        client.subscribe(runs=True, lanes=["Z"])
    async with env.aclient(ANON) as anon:
        with pytest.raises(PermissionDenied):
            await anext(anon.subscribe(runs=True))
    assert env.state() == before


async def test_a_deleted_run_is_a_delete_change_and_the_feed_goes_on(
    env: Env, client: Client
) -> None:
    """Deleting a run (``runs.delete``, ``prune``) reaches subscribers as a DELETE carrying only
    the run's id: Realtime sends no more than the primary key of a deleted row (RLS is on), and
    over PostgreSQL a NOTIFY names the deleted ids. The subscription carries on."""
    template(client)
    run = client.runs.create("hello", {"name": "doomed"})
    client.runs.cancel(run.id)
    async with env.aclient() as ac:
        got = Collector(subscribe(ac, runs=True, since=datetime.now(UTC) - timedelta(minutes=1),
                                  watchdog_seconds=NO_WATCHDOG))
        try:
            await got.until(lambda xs: run_versions(xs, run.id) != [], "the cancelled run")
            await feeds_ready(env)
            await asyncio.to_thread(client.runs.delete, [run.id])
            await got.until(lambda xs: any(c.kind == "DELETE" for c in xs), "the DELETE")
            later = await asyncio.to_thread(client.runs.create, "hello", {"name": "after"})
            await got.until(lambda xs: run_versions(xs, later.id) != [], "a run after it")
        finally:
            await got.close()
    [gone] = [c for c in got.items if c.kind == "DELETE"]
    assert (gone.table, gone.run_id, gone.run) == ("runs", run.id, None)


async def test_a_subscriber_to_some_runs_hears_only_of_their_deletion(
    env: Env, client: Client
) -> None:
    template(client)
    mine, other = (client.runs.create("hello", {"name": n}) for n in ("mine", "other"))
    for r in (mine, other):
        client.runs.cancel(r.id)
    async with env.aclient() as ac:
        got = Collector(subscribe(ac, runs=[mine.id], watchdog_seconds=NO_WATCHDOG))
        try:
            await got.until(lambda xs: run_versions(xs, mine.id) != [], "my run")
            await feeds_ready(env)
            await asyncio.to_thread(client.runs.delete, [other.id])
            await asyncio.to_thread(client.runs.delete, [mine.id])
            await got.until(lambda xs: any(c.kind == "DELETE" for c in xs), "the DELETE")
        finally:
            await got.close()
    assert [c.run_id for c in got.items if c.kind == "DELETE"] == [mine.id]


async def test_a_run_deleted_while_no_feed_listened_is_a_delete_change(
    env: Env, client: Client
) -> None:
    """``runs=[ids]``: a run seen before and missing from the catch-up after a reconnect was
    deleted in between; no feed pushed it, the catch-up says so."""
    from pulser_ops.subscribe import _catch_up, _State

    template(client)
    run = client.runs.create("hello", {"name": "gone while away"})
    client.runs.cancel(run.id)
    async with env.aclient() as ac:
        st = _State([run.id], None, None, False, datetime.now(UTC))
        assert [c.kind for c in await _catch_up(ac, st)] == ["SNAPSHOT"]
        await asyncio.to_thread(client.runs.delete, [run.id])
        [gone] = await _catch_up(ac, st)
    assert (gone.kind, gone.run_id) == ("DELETE", run.id)
