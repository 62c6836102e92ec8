"""The control-plane API in namespaces (``client.runs``, ``client.events``, ...): written once.

This file is the one source of both client surfaces. It is written as async; ``python
scripts/unasync.py`` writes ``_sync/client.py`` from it by fixed substitutions (``async def`` ->
``def``, ``await`` dropped, ``AsyncRuns`` -> ``Runs``, ...), and a test fails when that file is
stale. So a method, a parameter or a docstring added here exists on both surfaces.

Each method builds a ``calls.Call`` and hands it to the transport; anything beyond one call
(artifact upload, pruning with file removal, paging) is decided here, once. The little that
differs by nature (blocking file-store calls, how a subscription runs) lives in
``concurrency.py``, which each surface has its own of.

Every public method is ``@checked``: its arguments are validated against its annotations (the
types of ``inputs``: ``Text``, ``Json``, ``Id``, ``Items[...]``, ...) before it runs, so bad input
is an ``InvalidInput`` naming the argument and nothing is sent.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Self

from ... import calls
from ... import models as m
from ...artifacts import plan as plan_artifact
from ...errors import InvalidInput, PulserOpsError
from ...instrumentation import observe_enqueue, receive, settle
from ...transport.base import AsyncTransport
from .. import inputs
from ..inputs import (
    CompletionLike,
    Content,
    EventLike,
    FilterLike,
    Id,
    Items,
    Json,
    JsonObject,
    Lane,
    LaneList,
    MessageLike,
    RunRequestLike,
    ScheduleLike,
    SpecDocLike,
    Statuses,
    TemplateLike,
    Text,
    checked,
)
from .concurrency import AsyncSubscribing, AsyncSubscription, run_blocking


class _Namespace:
    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport


def _at_most(n: int, cap: int | None) -> int:
    """``n``, or the transport's row cap when that is smaller."""
    return n if cap is None else min(n, cap)


class AsyncRuns(_Namespace):
    """Runs: enqueue, claim, heartbeat, complete, cancel, read, sweep and prune them."""

    @checked
    async def create(
        self,
        template: Text,
        params: JsonObject | None = None,
        *,
        lane: Lane | None = None,
        priority: int = 0,
        run_after: datetime | None = None,
        idempotency_key: Text | None = None,
        session_id: Id | None = None,
        max_attempts: int | None = None,
    ) -> m.Run:
        """Enqueue one run of ``template``; its params are checked against the template's schema."""
        req = inputs.one_request(
            template, params, lane, priority, run_after, idempotency_key, session_id, max_attempts
        )
        created = await self.create_many([req])
        return created[0]

    @checked
    async def create_many(self, runs: Items[RunRequestLike]) -> builtins.list[m.Run]:
        """Enqueue several runs in one call and one transaction (each a ``RunRequest`` or a
        mapping of its fields; an unknown key is refused)."""
        with observe_enqueue(inputs.requests(runs)) as seen:
            created = await self._t.execute(calls.enqueue_runs(seen.requests))
            seen.created(created)
        return created

    @checked
    async def claim(
        self,
        worker_id: Text,
        *,
        lanes: LaneList = m.LANES,
        limit: int = 1,
        lease_seconds: int | None = None,
    ) -> builtins.list[m.Run]:
        """Claim up to ``limit`` runs of these lanes for ``worker_id``; each claim bumps the
        run's ``attempt``, which fences every later call about it."""
        call = calls.claim_runs(worker_id, lanes, limit, lease_seconds)
        with receive(calls.lane_list(lanes) or m.LANES, worker_id) as got:
            claimed = await self._t.execute(call)
            got.extend(claimed)
        return claimed

    @checked
    async def heartbeat(
        self, run_id: Id, worker_id: Text, attempt: int, *, lease_seconds: int | None = None
    ) -> m.Heartbeat:
        """Extend the lease of a claimed run; ``LeaseLost`` once the lease moved on."""
        return await self._t.execute(calls.heartbeat_run(run_id, worker_id, attempt, lease_seconds))

    @checked
    async def heartbeat_many(
        self, worker_id: Text, held: Items[tuple[Id, int]]
    ) -> builtins.list[m.HeartbeatBatchItem]:
        """Heartbeat every ``(run_id, attempt)`` this worker holds; a lost one comes back
        with ``ok=False`` instead of failing the others."""
        return await self._t.execute(calls.heartbeat_runs(worker_id, held))

    @checked
    async def cancel(self, run_id: Id, reason: Text | None = None) -> m.Run:
        """Cancel a queued run at once; a running one gets a cancel request its worker sees at
        its next heartbeat."""
        return await self._t.execute(calls.cancel_run(run_id, reason))

    @checked
    async def complete(
        self,
        run_id: Id,
        worker_id: Text,
        attempt: int,
        status: m.Status | Text,
        *,
        result: Json = None,
        error: Text | None = None,
        error_class: Text | None = None,
        retryable: bool = True,
    ) -> m.Run:
        """Record how a claimed run ended; the result's status is ``queued`` when a failure was
        scheduled for retry."""
        with settle([(str(run_id), attempt, str(status))], worker_id) as outcomes:
            run = await self._t.execute(
                calls.complete_run(
                    run_id, worker_id, attempt, str(status), result, error, error_class, retryable
                )
            )
            if run.status == m.RunStatus.QUEUED:
                outcomes[str(run.id)] = "retried"
        return run

    @checked
    async def complete_many(
        self, worker_id: Text, completions: Items[CompletionLike]
    ) -> builtins.list[m.CompleteBatchItem]:
        """Complete a batch of this worker's runs in one call and one transaction.

        Each run is fenced on its own, like ``complete``: one whose lease moved on comes back
        with ``ok=False`` instead of failing the others. Bad input fails the whole batch.
        """
        items = inputs.completions(completions)
        if not items:
            return []
        asked = [(str(c.run_id), c.attempt, str(c.status)) for c in items]
        with settle(asked, worker_id) as outcomes:
            done = await self._t.execute(calls.complete_runs(worker_id, items))
            outcomes.update(inputs.settled_outcomes(done))
        return done

    @checked
    async def release(
        self, run_id: Id, worker_id: Text, attempt: int, reason: Text | None = None
    ) -> m.Run:
        """Give a claimed run back to the queue, its attempt given back (graceful shutdown)."""
        with settle([(str(run_id), attempt, "released")], worker_id):
            return await self._t.execute(calls.release_run(run_id, worker_id, attempt, reason))

    @checked
    async def get(self, run_id: Id, *, on_behalf_of: Id | None = None) -> m.Run:
        """The run. With ``on_behalf_of`` (the service role only): the run only when it has the
        same owner as that run, else ``NotFound``, as for a run that does not exist; how a
        worker reads what the owner of the run it works on could read."""
        if on_behalf_of is not None:
            return await self._t.execute(calls.get_run_on_behalf_of(run_id, on_behalf_of))
        return await self._t.execute(calls.get_run(run_id))

    @checked
    async def get_many(self, run_ids: Items[Id]) -> builtins.list[m.Run]:
        return await self._t.execute(calls.get_runs(run_ids))

    @checked
    async def list(
        self,
        *,
        status: Statuses | None = None,
        lane: LaneList | None = None,
        template: Text | None = None,
        session_id: Id | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        stuck: bool = False,
        limit: int = 100,
        after: Id | None = None,
    ) -> builtins.list[m.Run]:
        """Newest first; pass the last run's id as ``after`` for the next page."""
        return await self._t.execute(
            calls.list_runs(
                status=status,
                lane=lane,
                template=template,
                session_id=session_id,
                created_after=created_after,
                created_before=created_before,
                stuck=stuck,
                limit=limit,
                after=after,
            )
        )

    @checked
    async def iter(
        self,
        *,
        status: Statuses | None = None,
        lane: LaneList | None = None,
        template: Text | None = None,
        session_id: Id | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        stuck: bool = False,
        limit: int = 500,
    ) -> AsyncIterator[m.Run]:
        """Every run matching the filters of ``list``, newest first, page by page (``limit``:
        the page size)."""
        after = None
        while True:
            page = await self.list(
                status=status,
                lane=lane,
                template=template,
                session_id=session_id,
                created_after=created_after,
                created_before=created_before,
                stuck=stuck,
                limit=limit,
                after=after,
            )
            for run in page:
                yield run
            if len(page) < limit:
                return
            after = page[-1].id

    @checked
    async def search(
        self, filter: FilterLike | None = None, *, limit: int = 50
    ) -> builtins.list[m.Run]:
        """Runs matching ``filter`` (status, lanes, templates, worker, text in params or
        errors, created range), newest first; pass ``before`` (the last row's ``created_at``
        and ``id``) for the next page."""
        return await self._t.execute(calls.search_runs(filter, limit))

    @checked
    async def count(
        self, filter: FilterLike | None = None, *, max_exact: int | None = None
    ) -> m.RunCount:
        """How many runs match: exact up to ``max_exact`` (10,000), else the planner's estimate
        (``exact=False``), so it stays fast at millions of rows."""
        return await self._t.execute(calls.count_runs(filter, max_exact))

    @checked
    async def bulk_cancel(
        self,
        run_ids: Items[Id] | None = None,
        *,
        filter: FilterLike | None = None,
        max_runs: int = 1000,
        dry_run: bool = False,
        reason: Text | None = None,
    ) -> m.BulkResult:
        """Cancel the given runs, or every run matching ``filter`` (queued or running, not
        already cancelling), newest first, at most ``max_runs``; ``dry_run`` only counts."""
        return await self._t.execute(
            calls.bulk_cancel_runs(
                run_ids, filter, max_runs=max_runs, dry_run=dry_run, reason=reason
            )
        )

    @checked
    async def bulk_rerun(
        self,
        run_ids: Items[Id] | None = None,
        *,
        filter: FilterLike | None = None,
        max_runs: int = 1000,
        dry_run: bool = False,
    ) -> m.BulkResult:
        """Re-enqueue failed runs (given, or matching ``filter``): each gets a new run with
        its params; ``touched`` lists the new runs."""
        return await self._t.execute(
            calls.bulk_rerun_runs(run_ids, filter, max_runs=max_runs, dry_run=dry_run)
        )

    @checked
    async def run_now(self, run_id: Id) -> m.Run:
        """Make a queued run that waits (``run_after``, or a retry's backoff) claimable now;
        a run already due is returned as it is. ``Conflict`` for a running run,
        ``AlreadyTerminal`` for a finished one."""
        return await self._t.execute(calls.run_now(run_id))

    @checked
    async def bulk_run_now(
        self,
        run_ids: Items[Id] | None = None,
        *,
        filter: FilterLike | None = None,
        max_runs: int = 1000,
        dry_run: bool = False,
    ) -> m.BulkResult:
        """``run_now`` for the given runs, or every waiting queued run matching ``filter``,
        newest first, at most ``max_runs``; ``dry_run`` only counts."""
        return await self._t.execute(
            calls.bulk_run_now(run_ids, filter, max_runs=max_runs, dry_run=dry_run)
        )

    @checked
    async def rerun(
        self,
        run_id: Id,
        params: JsonObject | None = None,
        *,
        lane: Lane | None = None,
    ) -> m.Run:
        """A new run from ``run_id`` with the same params, or ``params`` (checked against the
        template's schema); the two runs are linked by events."""
        return await self._t.execute(calls.rerun_run(run_id, params, lane))

    @checked
    async def stuck(self, limit: int = 100) -> builtins.list[m.StuckRun]:
        """Runs swept at least once, or whose lease has expired now."""
        return await self._t.execute(calls.list_stuck_runs(limit))

    @checked
    async def steps(self, run_id: Id) -> builtins.list[m.RunStep]:
        return await self._t.execute(calls.list_run_steps(run_id))

    @checked
    async def record_step(
        self,
        run_id: Id,
        worker_id: Text,
        attempt: int,
        idx: int,
        name: Text,
        kind: Text,
        status: Text,
        *,
        exit_code: int | None = None,
        error: Text | None = None,
        output: Json = None,
    ) -> m.RunStep:
        """Write one step row of a claimed run, fenced like ``heartbeat``."""
        return await self._t.execute(
            calls.record_run_step(
                run_id, worker_id, attempt, idx, name, kind, status, exit_code, error, output
            )
        )

    @checked
    async def sweep(self, limit: int = 500) -> builtins.list[m.SweepResult]:
        """Requeue, fail or cancel runs whose lease expired (what the scheduled sweeper does)."""
        return await self._t.execute(calls.sweep_expired_runs(limit))

    @checked
    async def prune(
        self,
        older_than: timedelta | float,
        *,
        batch: int = 500,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        """Delete finished runs older than ``older_than`` (with their events, steps, artifact
        rows and files), one bounded batch at a time. Returns how many runs went;
        ``on_batch`` hears the running total after each batch (for progress).

        Over the Supabase API a batch is at most the API's row cap (``max_rows``): the files
        of a batch are removed right after it, so every deleted run's files are accounted for."""
        step = _at_most(batch, self._t.max_rows)
        total = 0
        while True:
            n = await self._delete(calls.prune_runs(older_than, step))
            total += n
            if on_batch is not None:
                on_batch(total)
            if n < step:
                return total

    @checked
    async def delete(self, run_ids: Items[Id]) -> int:
        """Delete finished runs by id (events, steps, artifact rows and files too), in batches
        of at most the API's row cap, each batch's files removed right after it."""
        ids = builtins.list(run_ids)
        step = _at_most(len(ids), self._t.max_rows) or 1
        total = 0
        for start in range(0, len(ids), step):
            total += await self._delete(calls.delete_runs(ids[start : start + step]))
        return total

    async def _delete(self, call: calls.Call[builtins.list[m.PruneResult]]) -> int:
        gone = await self._t.execute(call)
        if paths := inputs.storage_paths(gone):
            await run_blocking(self._t.files.remove, paths)
        return len(gone)


class AsyncEvents(_Namespace):
    """A run's event log: append to it, read it in ``seq`` order."""

    @checked
    async def append(self, events: Items[EventLike]) -> builtins.list[m.RunEvent]:
        """Append events (of one or more runs) in one call; each gets its run's next ``seq``."""
        return await self._t.execute(calls.append_run_events(inputs.events(events)))

    @checked
    async def log(
        self,
        run_id: Id,
        message: Text,
        *,
        kind: Text = "log",
        level: Text = "info",
        data: Json = None,
    ) -> m.RunEvent:
        """Append one event to a run's log."""
        appended = await self.append(
            [{"run_id": run_id, "kind": kind, "level": level, "message": message, "data": data}]
        )
        return appended[0]

    @checked
    async def list(
        self, run_id: Id, *, after_seq: int = 0, limit: int = 1000
    ) -> builtins.list[m.RunEvent]:
        """A run's events after ``after_seq``, oldest first: pass the last ``seq`` to page."""
        return await self._t.execute(calls.list_run_events(run_id, after_seq, limit))

    @checked
    async def last(self, run_id: Id, *, limit: int = 20) -> builtins.list[m.RunEvent]:
        """A run's newest ``limit`` events (at most 1000), oldest first: the tail of its log."""
        return await self._t.execute(calls.list_last_run_events(run_id, limit))

    @checked
    async def timeline(self, run_id: Id, *, limit: int = 500) -> builtins.list[m.RunEvent]:
        """A run's lifecycle events only (claims, retries, releases, sweeps, cancels, re-runs,
        the end), oldest first, however many log lines it has."""
        return await self._t.execute(calls.list_run_timeline(run_id, limit))


class AsyncArtifacts(_Namespace):
    """What runs produce: small text inline in the row, the rest as files in Storage."""

    @checked
    async def put(
        self,
        run_id: Id,
        name: Text,
        data: Content | bytes | Path,
        *,
        kind: Text | None = None,
        content_type: Text | None = None,
        metadata: JsonObject | None = None,
        attempt: int | None = None,
        inline: bool | None = None,
    ) -> m.Artifact:
        """Small text goes inline; larger text, bytes and files go to Storage first, then the row
        is written, so a row never points at a file that is not there."""
        p = plan_artifact(
            run_id,
            name,
            data,
            kind=kind,
            content_type=content_type,
            metadata=metadata,
            attempt=attempt,
            inline=inline,
        )
        if p.upload is None:
            return await self._t.execute(p.call)
        await run_blocking(self._t.files.put, p.upload.path, p.upload.data, p.upload.content_type)
        try:
            return await self._t.execute(p.call)
        except PulserOpsError:
            await run_blocking(self._t.files.remove, [p.upload.path])
            raise

    @checked
    async def get(self, run_id: Id, name: Text, *, attempt: int | None = None) -> m.Artifact:
        """The artifact ``name`` of ``attempt`` (None: of the latest attempt that saved it)."""
        return await self._t.execute(calls.get_artifact(run_id, name, attempt))

    @checked
    async def list(self, run_id: Id) -> builtins.list[m.Artifact]:
        """Every artifact of every attempt (each attempt keeps its own), by name then attempt."""
        return await self._t.execute(calls.list_artifacts(run_id))

    @checked
    async def download(self, run_id: Id, name: Text, *, attempt: int | None = None) -> bytes:
        """The artifact's content, from the row or from Storage."""
        a = await self.get(run_id, name, attempt=attempt)
        if a.inline_text is not None:
            return a.inline_text.encode()
        assert a.storage_path is not None
        return await run_blocking(self._t.files.get, a.storage_path)

    @checked
    async def head(self, artifact: m.Artifact, max_bytes: int) -> bytes:
        """The first ``max_bytes`` of an artifact's content, without fetching the rest of a
        stored file (a viewer shows a huge artifact's start and links the download)."""
        if artifact.inline_text is not None:
            return artifact.inline_text.encode()[:max_bytes]
        assert artifact.storage_path is not None
        return await run_blocking(self._t.files.head, artifact.storage_path, max_bytes)

    @checked
    async def signed_url(
        self, run_id: Id, name: Text, *, expires_in: int = 3600, attempt: int | None = None
    ) -> str:
        """A URL that serves a stored (not inline) artifact for ``expires_in`` seconds."""
        a = await self.get(run_id, name, attempt=attempt)
        if a.storage_path is None:
            raise InvalidInput(
                f"artifact {name} is stored inline; read it with get() or download()"
            )
        return await run_blocking(self._t.files.signed_url, a.storage_path, expires_in)


class AsyncTemplates(_Namespace):
    """Run templates: the steps a run executes, its params schema and retry policy."""

    @checked
    async def list(self) -> builtins.list[m.Template]:
        return await self._t.execute(calls.list_templates())

    @checked
    async def get(self, name: Text) -> m.Template:
        return await self._t.execute(calls.get_template(name))

    @checked
    async def upsert(self, template: TemplateLike) -> m.Template:
        """Create a template or replace the one with its name."""
        return await self._t.execute(calls.upsert_template(inputs.template_json(template)))

    @checked
    async def upsert_many(self, templates: Items[TemplateLike]) -> builtins.list[m.Template]:
        """Create or update several templates in one transaction: all of them, or none."""
        bodies = [inputs.template_json(t) for t in templates]
        return await self._t.execute(calls.upsert_templates(bodies))

    @checked
    async def delete(self, name: Text) -> m.Template:
        """Delete a template (admins; refused with ``Conflict`` while runs refer to it)."""
        return await self._t.execute(calls.delete_template(name))

    @checked
    async def summaries(self) -> builtins.list[m.TemplateSummary]:
        """Every template with its step kinds and when a run of it was last enqueued."""
        return await self._t.execute(calls.list_template_summaries())

    @checked
    async def get_version(self, name: Text, version: int) -> m.Template:
        """One recorded version of a template: what the runs stamped with it execute."""
        return await self._t.execute(calls.get_template_version(name, version))

    @checked
    async def versions(self, name: Text, limit: int = 100) -> builtins.list[m.TemplateVersion]:
        """A template's versions, newest first."""
        return await self._t.execute(calls.list_template_versions(name, limit))

    @checked
    async def validate(self, template: TemplateLike) -> builtins.list[m.FieldProblem]:
        """What ``upsert`` would refuse in ``template``, each problem with its field; writes
        nothing. The step DSL itself is checked by ``pulser_ops.steps.parse_steps``."""
        return await self._t.execute(calls.validate_template(inputs.template_json(template)))

    @checked
    async def validate_params(self, name: Text, params: Json) -> builtins.list[m.FieldProblem]:
        """What enqueueing ``params`` for template ``name`` would refuse, field by field
        (empty: valid); enqueues nothing."""
        return await self._t.execute(calls.validate_params(name, params))


class AsyncSessions(_Namespace):
    """Sessions group runs (an operator sees the runs of their sessions)."""

    @checked
    async def create(
        self, title: Text | None = None, metadata: JsonObject | None = None
    ) -> m.Session:
        return await self._t.execute(calls.create_session(title, metadata))

    @checked
    async def list(self, limit: int = 100) -> builtins.list[m.Session]:
        return await self._t.execute(calls.list_sessions(limit))

    @checked
    async def delete(self, session_id: Id) -> m.SessionDeleted:
        """Delete a session whose runs have all finished: its runs stay, detached from it; its
        spec docs and its conversation go with it. ``Conflict`` while any of its runs is queued
        or running (cancel them, or let them finish, first); ``NotFound`` for a session that is
        not yours."""
        return await self._t.execute(calls.delete_session(session_id))

    @checked
    async def summaries(self, limit: int = 100) -> builtins.list[m.SessionSummary]:
        """Sessions (yours; an admin's: everyone's), most recently active first."""
        return await self._t.execute(calls.list_session_summaries(limit))

    @checked
    async def post(
        self, session_id: Id, messages: Items[MessageLike]
    ) -> builtins.list[m.SessionMessage]:
        """Append messages to a session's conversation, in order, all or none."""
        items = inputs.messages(messages)
        return await self._t.execute(calls.add_session_messages(session_id, items))

    @checked
    async def messages(
        self, session_id: Id, *, before_id: int | None = None, limit: int = 200
    ) -> builtins.list[m.SessionMessage]:
        """A session's newest ``limit`` messages (before ``before_id``), oldest first."""
        return await self._t.execute(
            calls.list_session_messages(session_id, before_id=before_id, limit=limit)
        )

    @checked
    async def runs(self, session_id: Id, limit: int = 100) -> builtins.list[m.SessionRun]:
        """A session's runs (the newest ``limit``), oldest first, each with its last event
        and its artifacts."""
        return await self._t.execute(calls.list_session_runs(session_id, limit))


class AsyncSpecDocs(_Namespace):
    """Spec kit documents: saved by the worker that generated them (fenced by its lease), read
    by their owner (RLS) by run or by session."""

    @checked
    async def put(
        self,
        run_id: Id,
        worker_id: Text,
        attempt: int,
        docs: Items[SpecDocLike],
    ) -> builtins.list[m.SpecDoc]:
        """Save (or, on a retried attempt, replace) the run's documents, one row per path."""
        items = inputs.spec_docs(docs)
        return await self._t.execute(calls.put_spec_docs(run_id, worker_id, attempt, items))

    @checked
    async def list(
        self,
        *,
        run_id: Id | None = None,
        session_id: Id | None = None,
        limit: int = 100,
    ) -> builtins.list[m.SpecDoc]:
        return await self._t.execute(calls.list_spec_docs(run_id, session_id, limit))


class AsyncLanes(_Namespace):
    """The four lanes: pause them, cap their concurrency, see their queues."""

    @checked
    async def list(self) -> builtins.list[m.Lane]:
        return await self._t.execute(calls.list_lanes())

    @checked
    async def pause(self, lane: Text) -> m.Lane:
        """Workers stop claiming from the lane; its queued runs wait."""
        return await self._t.execute(calls.set_lane(lane, paused=True))

    @checked
    async def resume(self, lane: Text) -> m.Lane:
        return await self._t.execute(calls.set_lane(lane, paused=False))

    @checked
    async def set_concurrency(self, lane: Text, max_running: int | None) -> m.Lane:
        """Cap how many runs of the lane may run at once; None removes the cap."""
        if max_running is None:
            return await self._t.execute(calls.set_lane(lane, clear_max_running=True))
        return await self._t.execute(calls.set_lane(lane, max_running=max_running))

    @checked
    async def stats(self) -> builtins.list[m.LaneStats]:
        """Queued and running counts per lane, with the age of the oldest."""
        return await self._t.execute(calls.get_lane_stats())

    @checked
    async def board(self, running_limit: int = 100) -> m.BoardSnapshot:
        """The Runboard in one call: per lane depth, oldest queued age and 1-hour throughput,
        running runs with their last event, and stuck runs."""
        return await self._t.execute(calls.board_snapshot(running_limit))


class AsyncWorkers(_Namespace):
    """The worker registry: who is running, on which lanes, seen how recently."""

    @checked
    async def list(self) -> builtins.list[m.WorkerInfo]:
        return await self._t.execute(calls.list_workers())

    @checked
    async def health(self) -> builtins.list[m.WorkerHealth]:
        """Each worker with how long since it was seen, whether that is stale, and its runs."""
        return await self._t.execute(calls.get_worker_health())

    @checked
    async def register(
        self,
        worker_id: Text,
        *,
        host: Text = "",
        pid: int | None = None,
        lanes: LaneList = m.LANES,
        version: Text = "",
        concurrency: int = 1,
        metadata: JsonObject | None = None,
    ) -> m.WorkerInfo:
        return await self._t.execute(
            calls.register_worker(
                worker_id,
                host=host,
                pid=pid,
                lanes=lanes,
                version=version,
                concurrency=concurrency,
                metadata=metadata,
            )
        )

    @checked
    async def deregister(self, worker_id: Text, status: Text = "stopped") -> m.WorkerInfo:
        """Mark a worker ``stopped`` (or ``draining``)."""
        return await self._t.execute(calls.deregister_worker(worker_id, status))


class AsyncMonitoring(_Namespace):
    """What monitors read: the fleet's gauges and performance per template and step kind."""

    @checked
    async def fleet(
        self,
        *,
        exact_limit: int | None = None,
        stale_beats: float | None = None,
        forget_seconds: int | None = None,
        timeout_ms: int | None = None,
    ) -> m.FleetMetrics:
        """Queue depth and age per lane, running, stuck and finished runs, workers and slots,
        at a bounded cost: exact below ``exact_limit`` (10,000) runs per lane, estimates above
        (``exact=False``). ``timeout_ms`` arms a statement_timeout (direct PostgreSQL) after
        which the answer comes from estimates."""
        return await self._t.execute(
            calls.fleet_metrics(
                exact_limit=exact_limit,
                stale_beats=stale_beats,
                forget_seconds=forget_seconds,
                timeout_ms=timeout_ms,
            )
        )

    @checked
    async def performance(
        self, period: Text = "day", *, max_exact: int | None = None, step_runs: int | None = None
    ) -> m.PerformanceStats:
        """Throughput, queue wait and run duration percentiles per template, step duration
        percentiles per kind, over the last ``hour``, ``day`` or ``week``; sampled above
        ``max_exact`` (10,000) finished runs (``exact=False``)."""
        return await self._t.execute(
            calls.performance_stats(period, max_exact=max_exact, step_runs=step_runs)
        )


class AsyncAlerts(_Namespace):
    """Alert incidents: evaluate the rules (what ``pulser-ops alerts`` does), list them."""

    @checked
    async def evaluate(self, rules: JsonObject) -> builtins.list[m.AlertNotice]:
        """Evaluate the rules once (service role): incidents open, remind or resolve, and the
        notices to send come back. ``pulser_ops.alerts.Rules`` builds ``rules`` with defaults."""
        return await self._t.execute(calls.evaluate_alerts(rules))

    @checked
    async def list(self, status: Text | None = None, *, limit: int = 50) -> builtins.list[m.Alert]:
        """Incidents, firing first, newest first; ``status``: ``firing`` or ``resolved``."""
        return await self._t.execute(calls.list_alerts(status, limit))


class AsyncSchedules(_Namespace):
    """Recurring runs: a template's run at the times a cron expression names, in a time zone.
    Admins write schedules; every operator reads them; the sweeper fires them."""

    @checked
    async def list(self) -> builtins.list[m.Schedule]:
        return await self._t.execute(calls.list_schedules())

    @checked
    async def get(self, name: Text) -> m.Schedule:
        """One schedule; ``NotFound`` when there is none by that name."""
        return await self._t.execute(calls.get_schedule(name))

    @checked
    async def upsert(self, schedule: ScheduleLike) -> m.Schedule:
        """Create a schedule or replace the one with its name (admins). The cron expression,
        time zone, template and params are checked first; a changed timing counts from now."""
        return await self._t.execute(calls.upsert_schedule(inputs.schedule_json(schedule)))

    @checked
    async def upsert_many(self, schedules: Items[ScheduleLike]) -> builtins.list[m.Schedule]:
        """Create or update several schedules in one transaction: all of them, or none."""
        bodies = [inputs.schedule_json(x) for x in schedules]
        return await self._t.execute(calls.upsert_schedules(bodies))

    @checked
    async def pause(self, name: Text) -> m.Schedule:
        return await self._t.execute(calls.set_schedule_enabled(name, False))

    @checked
    async def resume(self, name: Text) -> m.Schedule:
        """Fire again, from the next due time after now (missed times are not made up)."""
        return await self._t.execute(calls.set_schedule_enabled(name, True))

    @checked
    async def delete(self, name: Text) -> m.Schedule:
        return await self._t.execute(calls.delete_schedule(name))

    @checked
    async def preview(
        self, cron: Text, timezone: Text = "UTC", count: int = 5
    ) -> builtins.list[m.ScheduleTime]:
        """The next ``count`` times ``cron`` names after now, in ``timezone`` (each also as
        that zone's wall clock); ``InvalidInput`` says what in the expression cannot be read."""
        return await self._t.execute(calls.preview_schedule(cron, timezone, count))

    @checked
    async def enqueue_due(self, limit: int = 100) -> builtins.list[m.ScheduleFire]:
        """Enqueue the run of every due schedule, once per due time (service role: what the
        sweeper does on each pass)."""
        return await self._t.execute(calls.enqueue_due_schedules(limit))


class AsyncClient(AsyncSubscribing):
    """The client: one namespace per area. Build it with ``await pulser_ops.aconnect()``."""

    def __init__(self, transport: AsyncTransport, *, description: str = "") -> None:
        self.transport = transport
        self.description = description
        self.runs = AsyncRuns(transport)
        self.events = AsyncEvents(transport)
        self.artifacts = AsyncArtifacts(transport)
        self.templates = AsyncTemplates(transport)
        self.sessions = AsyncSessions(transport)
        self.spec_docs = AsyncSpecDocs(transport)
        self.lanes = AsyncLanes(transport)
        self.workers = AsyncWorkers(transport)
        self.monitoring = AsyncMonitoring(transport)
        self.alerts = AsyncAlerts(transport)
        self.schedules = AsyncSchedules(transport)

    @checked
    def subscribe(
        self,
        *,
        runs: bool | Items[Id] = False,
        events: Id | Items[Id] | None = None,
        lanes: LaneList | None = None,
        workers: bool = False,
        since: datetime | None = None,
    ) -> AsyncSubscription:
        """Live changes: ``async for change in client.subscribe(runs=True, events=run_id)``.

        Reconnects by itself and catches up after every (re)connect, so no change is missed;
        a change may be delivered twice around a reconnect but never out of order for a run.
        ``since``: with ``runs=True``, catch up on the runs changed since then (default: now).

        On the sync ``Client`` this is a ``SyncSubscription``: the same machinery on a helper
        thread, with ``next(timeout=...)``; close it (or use ``with``) to stop the thread.
        """
        return self._open_subscription(
            runs=runs, events=events, lanes=lanes, workers=workers, since=since
        )

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
