"""Realtime connections drop; subscriptions must not lose anything.

Over the Supabase transport (the stand-in: changes committed while a socket is down are gone,
as with the real service) a subscription is cut mid-stream with
``drop_realtime_connections()`` while changes keep coming, some of them while no socket is
open. Every event must still arrive exactly once and in ``seq`` order, and run versions must
only go forward and end at the run's final state, because the SDK catches up by query after
every reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import pulser_ops
from pulser_ops import Client, TransportError
from pulser_ops.subscribe import subscribe
from pulser_ops.transport.base import Ready, Record
from tests.contract.helpers import template
from tests.contract.subs import Collector, event_seqs, run_versions
from tests.standin import StandIn
from tests.support.databases import MigratedTemplate
from tests.support.standins import migrated_standin, wait_until_decoded

SECRET = "realtime-drop-test-secret-with-at-least-32-bytes"
#: Longer than the test: recovery must come from drop detection, not the silence watchdog.
NO_WATCHDOG = 3600.0


@contextlib.contextmanager
def realtime_outage(sb: StandIn) -> Iterator[None]:
    """Keep closing every Realtime socket (every 20 ms) for the duration of the block."""
    stop = threading.Event()

    def storm() -> None:
        while not stop.is_set():
            sb.drop_realtime_connections()
            stop.wait(0.02)

    thread = threading.Thread(target=storm, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def sb(migrated_template: MigratedTemplate, tmp_path_factory: pytest.TempPathFactory
       ) -> Iterator[StandIn]:
    with migrated_standin(migrated_template, tmp_path_factory, prefix="rt",
                          secret=SECRET) as standin:
        yield standin


@pytest.fixture
def service(sb: StandIn, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Client]:
    monkeypatch.delenv("PULSER_OPS_DATABASE_URL", raising=False)
    with pulser_ops.connect(supabase_url=sb.url, supabase_key=sb.service_key) as client:
        yield client


async def test_feed_reports_a_dropped_socket(sb: StandIn, service: Client) -> None:
    template(service, "drop-feed", params_schema={"type": "object"})
    ac = await pulser_ops.aconnect(supabase_url=sb.url, supabase_key=sb.service_key)
    async with ac, ac.transport.feed(frozenset({"runs"})) as feed:
        it = feed.__aiter__()
        # Realtime pushes changes only once it says the feed is live.
        assert isinstance(await asyncio.wait_for(it.__anext__(), 60), Ready)
        run = await asyncio.to_thread(service.runs.create, "drop-feed", {})
        first = await asyncio.wait_for(it.__anext__(), 60)
        assert isinstance(first, Record) and first.row["id"] == str(run.id)
        assert await asyncio.to_thread(sb.drop_realtime_connections) >= 1
        with pytest.raises(TransportError):
            while True:  # anything already queued, then the drop
                await asyncio.wait_for(it.__anext__(), 60)


async def test_no_change_is_lost_across_dropped_connections(sb: StandIn, service: Client) -> None:
    template(service, "drop", params_schema={"type": "object"})
    run = service.runs.create("drop", {}, lane="C")
    joins_before = sb.realtime_joins
    async with await pulser_ops.aconnect(supabase_url=sb.url, supabase_key=sb.service_key) as ac:
        got = Collector(subscribe(ac, runs=[run.id], events=run.id,
                                  watchdog_seconds=NO_WATCHDOG))
        try:
            [claimed] = await asyncio.to_thread(service.runs.claim, "w1", lanes=["C"])
            for i in range(5):
                await asyncio.to_thread(service.events.log, run.id, f"before {i}")
            await got.until(lambda xs: 6 in event_seqs(xs), "the events before the drop")
            joins_at_drop = sb.realtime_joins

            async def rejoined(after: int) -> int:
                """Until the subscription joined again after a drop (the commits below take
                milliseconds, far less than a reconnect): each drop hits a live socket."""
                for _ in range(600):
                    if sb.realtime_joins > after:
                        break
                    await asyncio.sleep(0.05)
                return sb.realtime_joins

            for round_ in range(3):
                if round_:
                    joins_at_drop = await rejoined(joins_at_drop)
                dropped = await asyncio.to_thread(sb.drop_realtime_connections)
                assert dropped >= 1
                # These commits race the reconnect: some land while no socket is open.
                for i in range(10):
                    await asyncio.to_thread(service.events.log, run.id, f"drop {round_}.{i}")
                    if i % 3 == 0:
                        await asyncio.to_thread(service.runs.heartbeat, run.id, "w1",
                                                claimed.attempt)

            # The last changes land while every socket keeps being dropped, and are decoded by
            # the Realtime feed before it is allowed to stay up: nothing comes after them, so
            # only the catch-up after the final reconnect can deliver them.
            await rejoined(joins_at_drop)
            with realtime_outage(sb):
                for i in range(3):
                    await asyncio.to_thread(service.events.log, run.id, f"last {i}")
                await asyncio.to_thread(service.runs.complete, run.id, "w1", claimed.attempt,
                                        "succeeded", result={"ok": True})
                await asyncio.to_thread(wait_until_decoded, sb.app.db_url)
            final = await asyncio.to_thread(service.runs.get, run.id)
            last = (await asyncio.to_thread(service.events.list, run.id))[-1].seq
            await got.until(
                lambda xs: last in event_seqs(xs) and final.version in run_versions(xs, run.id),
                f"event {last} and run version {final.version}",
            )
        finally:
            await got.close()

    assert sb.realtime_joins >= joins_before + 5  # the first join, one per drop, the last
    assert event_seqs(got.items) == list(range(1, last + 1))  # every event, once, in order
    messages = [c.event.message for c in got.items if c.event is not None]
    assert [m for m in messages if m.startswith("drop ")] == [
        f"drop {r}.{i}" for r in range(3) for i in range(10)]
    versions = run_versions(got.items, run.id)
    assert all(a < b for a, b in itertools.pairwise(versions))
    assert versions[-1] == final.version
    last_run = [c.run for c in got.items if c.run is not None][-1]
    assert (last_run.status, last_run.result) == ("succeeded", {"ok": True})
