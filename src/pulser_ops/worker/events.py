"""Batched run events: every run's log lines and step events go out in few round trips.

Step executors call ``emit`` from whatever thread they run in (process pumps, handler
threads) and must not block on the network. The sink buffers events for *all* runs of the
worker and a single flusher thread sends them with ``events.append`` every
``interval`` seconds (or sooner when the buffer is large), so a chatty step costs a
handful of inserts per second no matter how many lines it prints.

A run that ends takes *its own* buffered events out of the sink (``take_run``) and its
completion writes them, just before the terminal event, in the same transaction: a short run
costs no append of its own. Events already on their way are waited for first, and one sender
keeps every run's events in order. ``flush_run`` (release, lease lost) waits until a run's
events are in ``run_events`` instead.

No event is lost to one bad value or to a database restart:

- text is made storable on the way in (``textsafe``: NUL and lone surrogates are replaced
  visibly), so odd output cannot make the database refuse a batch;
- a batch the database still refuses is split (by run, then in halves), so the other events go
  through, and only the event it refuses is replaced by an ``event_refused`` event that says
  what was refused and why (a run that no longer exists loses its events, nothing else);
- a batch that cannot be sent because the database is away is kept and sent again until it is
  stored; only a sink that is closing gives up, after a few tries. An append is not safe to
  repeat (it would store the lines twice), so after a failure that may have come after the
  append committed (its reply lost), the sink first reads the run's events after the last seq it
  knows: an append is all or nothing and gives a run's events consecutive seqs, so finding the
  batch's events there, in order, means it was stored.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from typing import Any, NamedTuple, cast
from uuid import UUID

from ..client import Client
from ..errors import InvalidInput, NotFound, TransportError
from ..models import EventIn, EventLevel, RunEvent
from .textsafe import safe_json, safe_text

log = logging.getLogger("pulser_ops.worker")

#: The control plane refuses messages longer than this many bytes.
MAX_MESSAGE_BYTES = 16 * 1024
#: ``append_run_events`` accepts at most 5000 events per call.
MAX_BATCH = 1000
#: Pauses between sends while the database cannot be reached: first, and at most.
RETRY_PAUSE_SECONDS = (0.2, 5.0)
#: A closing sink tries a batch this many times before it gives up on an unreachable database.
CLOSING_ATTEMPTS = 3
#: Kind of the event that stands in for one the database refused.
REFUSED_KIND = "event_refused"
#: Runs whose last stored seq the sink remembers (for telling whether a lost append was stored).
SEQS_KEPT = 10_000
#: Events by other writers (cancel requests...) a lost batch may sit behind.
FOREIGN_EVENTS = 100
#: ``list_run_events`` returns at most this many events per call.
PAGE = 5000


#: The levels the control plane takes (``models.EventLevel``).
LEVELS = ("debug", "info", "warn", "error")


_CANONICAL_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _run_key(run_id: str | UUID) -> str:
    """The run id in canonical form (what ``str(uuid)`` gives), checked."""
    if isinstance(run_id, str) and _CANONICAL_UUID.match(run_id):
        return run_id  # the worker's own ids: no need to parse them again
    try:
        return str(run_id if isinstance(run_id, UUID) else UUID(run_id))
    except (ValueError, TypeError, AttributeError):
        raise InvalidInput(f"run_id: not a uuid ({run_id!r})") from None


def clip(message: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    if len(message) * 4 <= limit:  # at most 4 bytes a character: fits, no need to encode
        return message
    raw = message.encode()
    if len(raw) <= limit:
        return message
    return raw[: limit - 32].decode("utf-8", errors="ignore") + " …[truncated]"


class Buffered(NamedTuple):
    """An event waiting in the sink: plain values, already checked and made storable (no model
    per event: most of them never leave the worker on their own, their run's completion
    carries them)."""

    run_id: str
    kind: str
    level: EventLevel
    message: str
    data: Any
    attempt: int | None
    worker_id: str | None

    def model(self) -> EventIn:
        """The event as ``events.append`` takes it."""
        return EventIn.model_construct(
            run_id=UUID(self.run_id),
            kind=self.kind,
            level=self.level,
            message=self.message,
            data=self.data,
            attempt=self.attempt,
            worker_id=self.worker_id,
        )

    def carried(self) -> dict[str, Any]:
        """The event as a completion carries it (its attempt and worker are the completion's)."""
        return {"kind": self.kind, "level": self.level, "message": self.message, "data": self.data}


class EventSink:
    """Thread-safe buffer of events with a background flusher."""

    def __init__(self, client: Client, *, interval: float = 0.25, high_water: int = 500) -> None:
        self._client = client
        self._interval = interval
        self._high_water = high_water
        #: Buffered events, per run (in the order runs first had one), each run's in order: a
        #: run that ends takes its own in O(1), however many other runs have events waiting.
        self._pending: dict[str, list[Buffered]] = {}
        self._buffered = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a batch was taken or sent
        #: Events per run that are buffered or on their way to the database.
        self._unsent: Counter[str] = Counter()
        self._send_lock = threading.Lock()  # one sender at a time keeps per-run order
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pulser-events", daemon=True)
        #: Events lost (their run is gone, or the database was away as the sink closed).
        self.dropped = 0
        #: Events the database refused, each replaced by an ``event_refused`` event.
        self.refused = 0
        #: Batches whose reply was lost but which were stored (found, not sent again).
        self.found_stored = 0
        #: The last seq stored for a run by this sink (the sender's own: under _send_lock).
        self._last_seq: OrderedDict[UUID, int] = OrderedDict()

    def start(self) -> None:
        self._thread.start()

    def add(
        self,
        run_id: str,
        kind: str,
        level: str,
        message: str,
        data: Any = None,
        *,
        attempt: int | None = None,
        worker_id: str | None = None,
    ) -> None:
        if level not in LEVELS:
            raise InvalidInput(f"event level {level!r}: must be one of {', '.join(LEVELS)}")
        # Every field is checked or made storable right here (this runs for every log batch
        # and step event of every run).
        key = _run_key(run_id)
        event = Buffered(
            key,
            str(kind),
            cast(EventLevel, level),
            clip(safe_text(message)),
            None if data is None else safe_json(data),
            attempt,
            worker_id,
        )
        with self._lock:
            self._pending.setdefault(key, []).append(event)
            self._buffered += 1
            self._unsent[key] += 1
            big = self._buffered >= self._high_water
        if big:
            self._wake.set()

    def flush_run(self, run_id: str, timeout: float = 30.0) -> None:
        """Return once every event of ``run_id`` added so far is in the database (or was
        dropped): called before the run is completed, so its log precedes its terminal event."""
        if not self._thread.is_alive():
            self.flush()
            return
        with self._changed:
            if not self._unsent[run_id]:
                return
            self._wake.set()
            self._changed.wait_for(lambda: not self._unsent[run_id], timeout)

    def take_run(self, run_id: str, timeout: float = 30.0) -> list[Buffered]:
        """Take ``run_id``'s buffered events out of the sink, once any of its events already on
        their way are in the database: the run's completion carries them (``put_back`` them if
        it is not recorded), so a short run needs no append of its own."""
        with self._changed:
            mine = self._take(run_id)
            if self._unsent[run_id] and self._thread.is_alive():
                self._wake.set()
                self._changed.wait_for(lambda: not self._unsent[run_id], timeout)
        return mine

    def take_run_now(self, run_id: str) -> list[Buffered] | None:
        """``take_run`` for a caller that must not block (the event loop): None when some of the
        run's events are on their way right now (then ``take_run`` on a thread waits for them)."""
        with self._lock:
            in_flight = self._unsent[run_id] - len(self._pending.get(run_id, ()))
            if in_flight > 0:
                return None
            return self._take(run_id)

    def _take(self, run_id: str) -> list[Buffered]:
        """(under the lock)"""
        mine = self._pending.pop(run_id, [])
        if mine:
            self._buffered -= len(mine)
            self._forget(run_id, len(mine))
        return mine

    def put_back(self, events: list[Buffered]) -> None:
        """Events ``take_run`` handed out that their completion did not write: sent as usual,
        ahead of anything added since."""
        if not events:
            return
        by_run: dict[str, list[Buffered]] = {}
        for ev in events:
            by_run.setdefault(ev.run_id, []).append(ev)
        with self._lock:
            for run_id, mine in by_run.items():
                self._pending[run_id] = mine + self._pending.get(run_id, [])
                self._unsent[run_id] += len(mine)
            self._buffered += len(events)
        self._wake.set()

    def _forget(self, run_id: str, n: int) -> None:
        self._unsent[run_id] -= n
        if self._unsent[run_id] <= 0:
            del self._unsent[run_id]

    def flush(self) -> None:
        """Send everything buffered so far."""
        while self._send_some():
            pass

    def _send_some(self) -> bool:
        with self._send_lock:
            with self._lock:
                batch = self._next_batch()
            if not batch:
                return False
            try:
                self._send([ev.model() for ev in batch])
            finally:
                with self._changed:
                    for ev in batch:
                        self._forget(ev.run_id, 1)
                    self._changed.notify_all()
            return True

    def _next_batch(self) -> list[Buffered]:
        """Up to MAX_BATCH buffered events, runs first buffered first (under the lock)."""
        batch: list[Buffered] = []
        while self._pending and len(batch) < MAX_BATCH:
            run_id = next(iter(self._pending))
            events = self._pending[run_id]
            room = MAX_BATCH - len(batch)
            if len(events) <= room:
                batch += events
                del self._pending[run_id]
            else:
                batch += events[:room]
                self._pending[run_id] = events[room:]
        self._buffered -= len(batch)
        return batch

    def _send(self, batch: list[EventIn]) -> None:
        try:
            self._append(batch)
        except TransportError as e:
            log.error(
                "dropping %d events: the database was away as the worker stopped (%s)",
                len(batch),
                e,
            )
            self.dropped += len(batch)
        except Exception as e:  # refused (or not sendable): find the event, send the others
            self._split(batch, e)

    def _append(self, batch: list[EventIn]) -> None:
        """``events.append``, sent again while the database cannot be reached."""
        pause, longest = RETRY_PAUSE_SECONDS
        tries = 0
        while True:
            try:
                if tries and self._was_stored(batch):
                    self.found_stored += 1
                    log.info("%d events whose append reply was lost were stored", len(batch))
                    return
                self._remember(self._client.events.append(batch))
                return
            except TransportError as e:
                tries += 1
                closing = self._stop.is_set()
                if closing and tries >= CLOSING_ATTEMPTS:
                    raise
                log.warning(
                    "appending %d events failed (%s); retrying in %.1fs", len(batch), e, pause
                )
                if closing:
                    time.sleep(pause)
                else:
                    self._stop.wait(pause)
                pause = min(pause * 2, longest)

    def _remember(self, rows: Sequence[RunEvent]) -> None:
        for row in rows:
            self._last_seq[row.run_id] = max(row.seq, self._last_seq.get(row.run_id, 0))
            self._last_seq.move_to_end(row.run_id)
        while len(self._last_seq) > SEQS_KEPT:
            self._last_seq.popitem(last=False)

    def _was_stored(self, batch: list[EventIn]) -> bool:
        """After a failed append: whether it was stored all the same (its reply lost)."""
        stored = False
        for i, run_id in enumerate(dict.fromkeys(ev.run_id for ev in batch)):
            want = [_key(ev) for ev in batch if ev.run_id == run_id]
            found = self._tail(run_id, len(want) + FOREIGN_EVENTS)
            have = [_key(ev) for ev in found]
            at = next(
                (j for j in range(len(have) - len(want) + 1) if have[j : j + len(want)] == want),
                None,
            )
            if i == 0 and at is None:
                return False  # all or nothing: one run's part tells for the batch
            if at is not None:
                self._remember(found[at : at + len(want)])
                stored = True
        return stored

    def _tail(self, run_id: UUID, keep: int) -> list[RunEvent]:
        """The run's last ``keep`` events after the last seq this sink stored for it (a
        stored batch is there: nothing of this sink's was sent after it)."""
        after = self._last_seq.get(run_id, 0)
        tail: list[RunEvent] = []
        while True:
            page = self._client.events.list(run_id, after_seq=after, limit=PAGE)
            tail = (tail + page)[-keep:]
            if len(page) < PAGE:
                return tail
            after = page[-1].seq

    def _split(self, batch: list[EventIn], error: Exception) -> None:
        """A refused batch: by run first (one run may be gone), then in halves, down to the
        one event the database will not take, which is replaced by a note."""
        runs = list(dict.fromkeys(ev.run_id for ev in batch))
        if len(runs) > 1:
            for run_id in runs:
                self._send([ev for ev in batch if ev.run_id == run_id])
            return
        if isinstance(error, NotFound):  # the run was deleted meanwhile: nowhere to put them
            log.warning("dropping %d events of run %s: %s", len(batch), runs[0], error)
            self.dropped += len(batch)
            return
        if len(batch) > 1:
            half = len(batch) // 2
            self._send(batch[:half])
            self._send(batch[half:])
            return
        self._replace(batch[0], error)

    def _replace(self, event: EventIn, error: Exception) -> None:
        self.refused += 1
        why = safe_text(str(error))[:2000]
        note = EventIn(
            run_id=event.run_id,
            kind=REFUSED_KIND,
            level="error",
            message=clip(
                f"the control plane refused a {safe_text(event.kind)[:64]!r} event of this run, "
                f"which is replaced by this one: {why}"
            ),
            data={
                "kind": safe_text(event.kind)[:200],
                "level": event.level,
                "message_bytes": len(event.message.encode("utf-8", "replace")),
                "message_start": clip(safe_text(event.message), 1024),
                "error": why,
            },
            attempt=event.attempt,
            worker_id=event.worker_id,
        )
        log.warning("run %s: an event was refused (%s); a note stands in for it", event.run_id, why)
        try:
            self._append([note])
        except Exception as e:
            log.error("run %s: dropping a refused event and its note: %s", event.run_id, e)
            self.dropped += 1

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the flusher must survive anything; events are best effort
                log.exception("event flusher failed")

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.flush()


def _key(event: EventIn | RunEvent) -> tuple[str, str, str, int | None, str | None]:
    return (event.kind, event.level, event.message, event.attempt, event.worker_id)
