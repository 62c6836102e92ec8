"""Live changes that survive dropped connections.

A feed (LISTEN/NOTIFY, or Realtime ``postgres_changes``) is only a hint: connections drop and
Realtime loses subscriptions on reconnect (supabase-py #1134, realtime-py #213). So every
(re)connect is followed by a catch-up query, and every hint is resolved by reading the rows:

- runs: deduplicated by ``version`` (bumped on every update), so nothing is delivered twice
  in a row and no older state follows a newer one;
- events: per-run ``seq`` is gap-free and commit-ordered, so reading ``after_seq=last`` fills
  any gap and never repeats.

A watchdog forces a reconnect when the feed has been silent for too long while the catch-up
query shows that something changed (the symptom of a silently dead Realtime channel).

Realtime acknowledges a join before its change feed is live and says so later ("Subscribed to
PostgreSQL", the feed's ``Ready``): a change committed in between is never pushed, so the
catch-up runs again when ``Ready`` arrives. A deleted run cannot be read back: it is delivered
as a ``DELETE`` change carrying only its id (``Change.run_id``). A catch-up cannot see what was
deleted while no feed listened, except for ``runs=[ids]``: an id seen before and gone now.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol
from uuid import UUID

from pydantic import ValidationError

from . import calls
from . import models as m
from .errors import InvalidInput, TransportError
from .transport.base import AsyncTransport, FeedItem, Hint, Ready, Record

ChangeKind = Literal["INSERT", "UPDATE", "DELETE", "SNAPSHOT"]


class Subscriber(Protocol):
    """What a subscription needs of a client: its async transport (an ``AsyncClient`` is one).

    This module depends on the transport only, never on the client, so the client can build on
    it without an import cycle."""

    @property
    def transport(self) -> AsyncTransport: ...


class OwnedSubscriber(Subscriber, Protocol):
    """A subscriber that ``SyncSubscription`` opens on its thread, so it closes it too."""

    async def close(self) -> None: ...


#: Opens a fresh async client like the sync one being subscribed from (``connect()`` makes it).
SubscriberFactory = Callable[[], Awaitable[OwnedSubscriber]]

#: Catch-up reads look this far behind the last change seen, to cover clock skew and commit lag.
CATCH_UP_SLACK = timedelta(seconds=10)
#: Reconnect after this long without any feed traffic, to detect silently dead channels.
WATCHDOG_SECONDS = 30.0


class _State:
    def __init__(
        self,
        runs: bool | Iterable[UUID | str],
        events: UUID | str | Iterable[UUID | str] | None,
        lanes: Iterable[str] | None,
        workers: bool,
        since: datetime,
    ) -> None:
        self.all_runs = runs is True
        self.run_ids = (
            frozenset(str(r) for r in runs) if not isinstance(runs, bool) else frozenset()
        )
        if events is None:
            self.event_runs: frozenset[str] = frozenset()
        elif isinstance(events, UUID | str):
            self.event_runs = frozenset({str(events)})
        else:
            self.event_runs = frozenset(str(e) for e in events)
        self.lanes = frozenset(lanes) if lanes else None
        self.workers = workers
        self.since = since
        self.versions: dict[str, int] = {}
        self.last_seq: dict[str, int] = dict.fromkeys(self.event_runs, 0)
        self.worker_seen: dict[str, datetime] = {}

    @property
    def tables(self) -> frozenset[str]:
        t = set()
        if self.all_runs or self.run_ids:
            t.add("runs")
        if self.event_runs:
            t.add("run_events")
        if self.workers:
            t.add("workers")
        return frozenset(t)

    def wants_run(self, run: m.Run) -> bool:
        if self.lanes is not None and run.lane not in self.lanes:
            return False
        return self.all_runs or str(run.id) in self.run_ids

    def run_changes(self, runs: list[m.Run], kind: ChangeKind) -> list[m.Change]:
        """The wanted runs this subscriber has not seen at this version, oldest change first."""
        ordered = sorted(runs, key=lambda r: (r.updated_at, r.version))
        return [
            m.Change(table="runs", kind=kind, run=run)
            for run in ordered
            if self.wants_run(run) and self.fresh_run(run)
        ]

    def deleted(self, run_ids: Iterable[str]) -> list[m.Change]:
        """DELETE changes for the runs this subscriber follows: every run of ``runs=True``
        (when lanes narrow it, the runs seen in those lanes), or the ``runs=[...]`` given."""
        out = []
        for rid in run_ids:
            seen = self.lanes is None or rid in self.versions
            if rid in self.run_ids or (self.all_runs and seen):
                self.versions.pop(rid, None)
                out.append(m.Change(table="runs", kind="DELETE", run_id=UUID(rid)))
        return out

    def fresh_run(self, run: m.Run) -> bool:
        key = str(run.id)
        if self.versions.get(key, 0) >= run.version:
            return False
        self.versions[key] = run.version
        if run.updated_at > self.since:
            self.since = run.updated_at
        return True


async def _event_changes(client: Subscriber, st: _State, run_id: str) -> list[m.Change]:
    out = []
    while True:
        batch = await client.transport.execute(
            calls.list_run_events(run_id, st.last_seq[run_id], 1000)
        )
        for ev in batch:
            st.last_seq[run_id] = ev.seq
            out.append(m.Change(table="run_events", kind="INSERT", event=ev))
        if len(batch) < 1000:
            return out


async def _worker_changes(client: Subscriber, st: _State) -> list[m.Change]:
    out = []
    for w in await client.transport.execute(calls.list_workers()):
        if st.worker_seen.get(w.id) != w.last_seen_at:
            st.worker_seen[w.id] = w.last_seen_at
            out.append(m.Change(table="workers", kind="UPDATE", worker=w))
    return out


async def _catch_up(client: Subscriber, st: _State) -> list[m.Change]:
    out: list[m.Change] = []
    if st.all_runs:
        lanes = sorted(st.lanes) if st.lanes else None
        out += st.run_changes(
            await client.transport.execute(
                calls.runs_changed_since(st.since - CATCH_UP_SLACK, lanes, 10_000)
            ),
            "SNAPSHOT",
        )
    elif st.run_ids:
        runs = await client.transport.execute(calls.get_runs(st.run_ids))
        # A run seen before and gone now was deleted while no feed was listening.
        gone = (st.run_ids & st.versions.keys()) - {str(r.id) for r in runs}
        out += st.deleted(sorted(gone)) + st.run_changes(runs, "SNAPSHOT")
    for run_id in sorted(st.event_runs):
        out += await _event_changes(client, st, run_id)
    if st.workers:
        out += await _worker_changes(client, st)
    return out


async def _resolve(client: Subscriber, st: _State, item: Hint | Record) -> list[m.Change]:
    if isinstance(item, Record) and item.kind == "DELETE":
        # Only the primary key of a deleted row is known; events, steps and artifacts go with
        # their run, whose own DELETE says so.
        rid = item.row.get("id")
        return st.deleted([str(rid)]) if item.table == "runs" and rid is not None else []
    if item.table == "runs":
        if isinstance(item, Hint) and item.deleted:
            return st.deleted(item.ids or ())
        if isinstance(item, Record):
            try:
                run = m.Run.model_validate(item.row)
            except ValidationError:
                # Not a whole run (a payload Realtime trimmed): read it back by id.
                rid = item.row.get("id")
                item = Hint("runs", None if rid is None else (str(rid),))
            else:
                return st.run_changes([run], item.kind)
        if item.ids is None:
            return await _catch_up(client, st)
        wanted = [i for i in item.ids if st.all_runs or i in st.run_ids]
        if not wanted:
            return []
        return st.run_changes(await client.transport.execute(calls.get_runs(wanted)), "UPDATE")
    if item.table == "run_events":
        if isinstance(item, Record):
            run_id = str(item.row.get("run_id"))
            if run_id not in st.event_runs:
                return []
            seq = int(item.row.get("seq", 0))
            if seq == st.last_seq[run_id] + 1:
                st.last_seq[run_id] = seq
                return [
                    m.Change(
                        table="run_events", kind="INSERT", event=m.RunEvent.model_validate(item.row)
                    )
                ]
            if seq <= st.last_seq[run_id]:
                return []
            return await _event_changes(client, st, run_id)  # a gap: read what was missed
        targets = st.event_runs if item.ids is None else st.event_runs & set(item.ids)
        out: list[m.Change] = []
        for run_id in sorted(targets):
            out += await _event_changes(client, st, run_id)
        return out
    if item.table == "workers" and st.workers:
        return await _worker_changes(client, st)
    return []


async def _pump(
    feed: AsyncIterator[FeedItem | str], out: asyncio.Queue[FeedItem | str | TransportError]
) -> None:
    try:
        async for item in feed:
            await out.put(item)
        await out.put(TransportError("the feed ended"))
    except TransportError as e:
        await out.put(e)


async def subscribe(
    client: Subscriber,
    *,
    runs: bool | Iterable[UUID | str] = False,
    events: UUID | str | Iterable[UUID | str] | None = None,
    lanes: Iterable[str] | None = None,
    workers: bool = False,
    since: datetime | None = None,
    watchdog_seconds: float = WATCHDOG_SECONDS,
) -> AsyncIterator[m.Change]:
    st = _State(runs, events, lanes, workers, since or datetime.now(UTC))
    if not st.tables:
        raise InvalidInput(
            "subscribe to something: runs=True, runs=[ids], events=run_id or workers=True"
        )
    failures = 0
    while True:
        try:
            async with client.transport.feed(st.tables) as feed:
                # A pump task drains the feed into a queue, so waiting with a timeout (the
                # watchdog) never cancels the feed itself.
                items: asyncio.Queue[FeedItem | str | TransportError] = asyncio.Queue()
                pump = asyncio.create_task(_pump(feed, items))
                try:
                    # Open the feed first, then catch up: a change between the two is seen
                    # twice (and deduplicated), never lost.
                    for change in await _catch_up(client, st):
                        yield change
                    failures = 0
                    while True:
                        try:
                            async with asyncio.timeout(watchdog_seconds):
                                item = await items.get()
                        except TimeoutError:
                            for change in await _catch_up(client, st):
                                yield change
                            continue
                        if isinstance(item, TransportError):
                            raise item
                        if isinstance(item, str):
                            continue
                        if isinstance(item, Ready):
                            # The feed is live only now: what changed since the catch-up above
                            # was never pushed.
                            for change in await _catch_up(client, st):
                                yield change
                            continue
                        for change in await _resolve(client, st, item):
                            yield change
                finally:
                    pump.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await pump
        except TransportError:
            failures += 1
            await asyncio.sleep(min(5.0, 0.1 * 2 ** min(failures, 6)))


class SyncSubscription(Iterator[m.Change]):
    """Iterate live changes from sync code: an event loop on a helper thread feeds a queue."""

    def __init__(self, factory: SubscriberFactory, **kwargs: Any) -> None:
        self._queue: queue.Queue[m.Change | BaseException] = queue.Queue(maxsize=10_000)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(factory, kwargs), daemon=True, name="pulser-ops-subscribe"
        )
        self._thread.start()

    def _run(self, factory: SubscriberFactory, kwargs: dict[str, Any]) -> None:
        async def main() -> None:
            client = await factory()
            try:
                async for change in subscribe(client, **kwargs):
                    while not self._stop.is_set():
                        try:
                            self._queue.put(change, timeout=0.2)
                            break
                        except queue.Full:
                            continue
                    if self._stop.is_set():
                        return
            finally:
                await client.close()

        async def runner() -> None:
            task = asyncio.ensure_future(main())
            stop = asyncio.ensure_future(asyncio.to_thread(self._stop.wait))
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
            self._stop.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        try:
            asyncio.run(runner())
        except BaseException as e:  # surfaced to the iterating thread
            self._queue.put(e)

    def __next__(self) -> m.Change:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def next(self, timeout: float | None = None) -> m.Change | None:
        """The next change, or None after ``timeout`` seconds."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> SyncSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
