"""``Client`` and ``AsyncClient``: the control-plane API in namespaces.

Each method builds a ``calls.Call`` and hands it to the transport; the two clients differ only
in ``await``. Anything beyond one call (artifact upload, pruning with file removal, paging)
is decided in shared helpers so both clients behave the same.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar
from uuid import UUID

from . import calls
from . import models as m
from .artifacts import plan as plan_artifact
from .errors import InvalidInput, PulserOpsError
from .transport.base import AsyncTransport, Transport

if TYPE_CHECKING:
    from .subscribe import SyncSubscription

RunRequestLike = m.RunRequest | Mapping[str, Any]
EventLike = m.EventIn | Mapping[str, Any]
CompletionLike = m.Completion | Mapping[str, Any]
_In = TypeVar("_In", m.RunRequest, m.EventIn, m.Completion)


def _inputs(
    model: type[_In], items: Iterable[_In | Mapping[str, Any]], name: str
) -> builtins.list[_In]:
    """Batch inputs as models; a bad item is the caller's mistake, named by its position."""
    out = []
    for i, item in enumerate(items):
        try:
            out.append(item if isinstance(item, model) else model.model_validate(item))
        except ValueError as e:
            raise InvalidInput(f"{name}[{i}]: {e}") from None
    return out


def _requests(items: Iterable[RunRequestLike]) -> builtins.list[m.RunRequest]:
    return _inputs(m.RunRequest, items, "runs")


def _events(items: Iterable[EventLike]) -> builtins.list[m.EventIn]:
    return _inputs(m.EventIn, items, "events")


def _one_request(
    template: str,
    params: Mapping[str, Any] | None,
    lane: str | None,
    priority: int,
    run_after: datetime | None,
    idempotency_key: str | None,
    session_id: UUID | str | None,
    max_attempts: int | None,
) -> m.RunRequest:
    return _requests(
        [
            {
                "template": template,
                "params": {} if params is None else params,
                "lane": lane,
                "priority": priority,
                "run_after": run_after,
                "idempotency_key": idempotency_key,
                "session_id": session_id,
                "max_attempts": max_attempts,
            }
        ]
    )[0]


def _storage_paths(gone: Iterable[m.PruneResult]) -> builtins.list[str]:
    """The Storage files of deleted runs: SQL cannot delete them, the client must."""
    return [p for g in gone for p in g.storage_paths]


def _template_json(template: m.Template | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(template, m.Template):
        return template.model_dump(mode="json", exclude={"created_at", "updated_at"})
    if not isinstance(template, Mapping):
        raise InvalidInput(
            f"template: expected a Template or a mapping, not {type(template).__name__}"
        )
    return dict(template)


# ------------------------------------------------------------------------------------------------
# sync
# ------------------------------------------------------------------------------------------------


class _Sync:
    def __init__(self, transport: Transport) -> None:
        self._t = transport


class Runs(_Sync):
    def create(
        self,
        template: str,
        params: Mapping[str, Any] | None = None,
        *,
        lane: str | None = None,
        priority: int = 0,
        run_after: datetime | None = None,
        idempotency_key: str | None = None,
        session_id: UUID | str | None = None,
        max_attempts: int | None = None,
    ) -> m.Run:
        req = _one_request(
            template, params, lane, priority, run_after, idempotency_key, session_id, max_attempts
        )
        return self._t.execute(calls.enqueue_runs([req]))[0]

    def create_many(self, runs: Iterable[RunRequestLike]) -> builtins.list[m.Run]:
        return self._t.execute(calls.enqueue_runs(_requests(runs)))

    def claim(
        self,
        worker_id: str,
        *,
        lanes: Iterable[str] | str = m.LANES,
        limit: int = 1,
        lease_seconds: int | None = None,
    ) -> builtins.list[m.Run]:
        return self._t.execute(calls.claim_runs(worker_id, lanes, limit, lease_seconds))

    def heartbeat(
        self, run_id: UUID | str, worker_id: str, attempt: int, *, lease_seconds: int | None = None
    ) -> m.Heartbeat:
        return self._t.execute(calls.heartbeat_run(run_id, worker_id, attempt, lease_seconds))

    def heartbeat_many(
        self, worker_id: str, held: Iterable[tuple[UUID | str, int]]
    ) -> builtins.list[m.HeartbeatBatchItem]:
        return self._t.execute(calls.heartbeat_runs(worker_id, held))

    def cancel(self, run_id: UUID | str, reason: str | None = None) -> m.Run:
        return self._t.execute(calls.cancel_run(run_id, reason))

    def complete(
        self,
        run_id: UUID | str,
        worker_id: str,
        attempt: int,
        status: m.RunStatus | str,
        *,
        result: Any = None,
        error: str | None = None,
        error_class: str | None = None,
        retryable: bool = True,
    ) -> m.Run:
        return self._t.execute(
            calls.complete_run(
                run_id, worker_id, attempt, str(status), result, error, error_class, retryable
            )
        )

    def complete_many(
        self, worker_id: str, completions: Iterable[CompletionLike]
    ) -> builtins.list[m.CompleteBatchItem]:
        """Complete a batch of this worker's runs in one call and one transaction.

        Each run is fenced on its own, like ``complete``: one whose lease moved on comes back
        with ``ok=False`` instead of failing the others. Bad input fails the whole batch.
        """
        items = _inputs(m.Completion, completions, "completions")
        if not items:
            return []
        return self._t.execute(calls.complete_runs(worker_id, items))

    def release(
        self, run_id: UUID | str, worker_id: str, attempt: int, reason: str | None = None
    ) -> m.Run:
        return self._t.execute(calls.release_run(run_id, worker_id, attempt, reason))

    def get(self, run_id: UUID | str) -> m.Run:
        return self._t.execute(calls.get_run(run_id))

    def get_many(self, run_ids: Iterable[UUID | str]) -> builtins.list[m.Run]:
        return self._t.execute(calls.get_runs(run_ids))

    def list(
        self,
        *,
        status: Iterable[str] | str | None = None,
        lane: Iterable[str] | str | None = None,
        template: str | None = None,
        session_id: UUID | str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        stuck: bool = False,
        limit: int = 100,
        after: UUID | str | None = None,
    ) -> builtins.list[m.Run]:
        """Newest first; pass the last run's id as ``after`` for the next page."""
        return self._t.execute(
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

    def iter(self, **filters: Any) -> Iterator[m.Run]:
        """Every run matching the filters, page by page."""
        size = int(filters.pop("limit", 500))
        after = None
        while True:
            page = self.list(**filters, after=after, limit=size)
            yield from page
            if len(page) < size:
                return
            after = page[-1].id

    def stuck(self, limit: int = 100) -> builtins.list[m.StuckRun]:
        return self._t.execute(calls.list_stuck_runs(limit))

    def steps(self, run_id: UUID | str) -> builtins.list[m.RunStep]:
        return self._t.execute(calls.list_run_steps(run_id))

    def record_step(
        self,
        run_id: UUID | str,
        worker_id: str,
        attempt: int,
        idx: int,
        name: str,
        kind: str,
        status: str,
        *,
        exit_code: int | None = None,
        error: str | None = None,
        output: Any = None,
    ) -> m.RunStep:
        return self._t.execute(
            calls.record_run_step(
                run_id, worker_id, attempt, idx, name, kind, status, exit_code, error, output
            )
        )

    def sweep(self, limit: int = 500) -> builtins.list[m.SweepResult]:
        return self._t.execute(calls.sweep_expired_runs(limit))

    def prune(
        self,
        older_than: timedelta | float,
        *,
        batch: int = 500,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        """Delete finished runs older than ``older_than`` (with their events, steps, artifact
        rows and files), one bounded batch at a time. Returns how many runs went;
        ``on_batch`` hears the running total after each batch (for progress)."""
        total = 0
        while True:
            n = self._delete(calls.prune_runs(older_than, batch))
            total += n
            if on_batch is not None:
                on_batch(total)
            if n < batch:
                return total

    def delete(self, run_ids: Iterable[UUID | str]) -> int:
        """Delete finished runs by id (events, steps, artifact rows and files too)."""
        return self._delete(calls.delete_runs(run_ids))

    def _delete(self, call: calls.Call[builtins.list[m.PruneResult]]) -> int:
        gone = self._t.execute(call)
        if paths := _storage_paths(gone):
            self._t.files.remove(paths)
        return len(gone)


class Events(_Sync):
    def append(self, events: Sequence[EventLike]) -> builtins.list[m.RunEvent]:
        return self._t.execute(calls.append_run_events(_events(events)))

    def log(
        self,
        run_id: UUID | str,
        message: str,
        *,
        kind: str = "log",
        level: str = "info",
        data: Any = None,
    ) -> m.RunEvent:
        return self.append(
            [{"run_id": run_id, "kind": kind, "level": level, "message": message, "data": data}]
        )[0]

    def list(
        self, run_id: UUID | str, *, after_seq: int = 0, limit: int = 1000
    ) -> builtins.list[m.RunEvent]:
        return self._t.execute(calls.list_run_events(run_id, after_seq, limit))


class Artifacts(_Sync):
    def put(
        self,
        run_id: UUID | str,
        name: str,
        data: str | bytes | Path,
        *,
        kind: str | None = None,
        content_type: str | None = None,
        metadata: dict[str, Any] | None = None,
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
            return self._t.execute(p.call)
        self._t.files.put(p.upload.path, p.upload.data, p.upload.content_type)
        try:
            return self._t.execute(p.call)
        except PulserOpsError:
            self._t.files.remove([p.upload.path])
            raise

    def get(self, run_id: UUID | str, name: str) -> m.Artifact:
        return self._t.execute(calls.get_artifact(run_id, name))

    def list(self, run_id: UUID | str) -> builtins.list[m.Artifact]:
        return self._t.execute(calls.list_artifacts(run_id))

    def download(self, run_id: UUID | str, name: str) -> bytes:
        a = self.get(run_id, name)
        if a.inline_text is not None:
            return a.inline_text.encode()
        assert a.storage_path is not None
        return self._t.files.get(a.storage_path)

    def signed_url(self, run_id: UUID | str, name: str, *, expires_in: int = 3600) -> str:
        a = self.get(run_id, name)
        if a.storage_path is None:
            raise InvalidInput(
                f"artifact {name} is stored inline; read it with get() or download()"
            )
        return self._t.files.signed_url(a.storage_path, expires_in)


class Templates(_Sync):
    def list(self) -> builtins.list[m.Template]:
        return self._t.execute(calls.list_templates())

    def get(self, name: str) -> m.Template:
        return self._t.execute(calls.get_template(name))

    def upsert(self, template: m.Template | Mapping[str, Any]) -> m.Template:
        return self._t.execute(calls.upsert_template(_template_json(template)))

    def upsert_many(
        self, templates: Iterable[m.Template | Mapping[str, Any]]
    ) -> builtins.list[m.Template]:
        """Create or update several templates in one transaction: all of them, or none."""
        return self._t.execute(calls.upsert_templates([_template_json(t) for t in templates]))


class Sessions(_Sync):
    def create(
        self, title: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> m.Session:
        return self._t.execute(calls.create_session(title, metadata))

    def list(self, limit: int = 100) -> builtins.list[m.Session]:
        return self._t.execute(calls.list_sessions(limit))


class Lanes(_Sync):
    def list(self) -> builtins.list[m.Lane]:
        return self._t.execute(calls.list_lanes())

    def pause(self, lane: str) -> m.Lane:
        return self._t.execute(calls.set_lane(lane, paused=True))

    def resume(self, lane: str) -> m.Lane:
        return self._t.execute(calls.set_lane(lane, paused=False))

    def set_concurrency(self, lane: str, max_running: int | None) -> m.Lane:
        """Cap how many runs of the lane may run at once; None removes the cap."""
        if max_running is None:
            return self._t.execute(calls.set_lane(lane, clear_max_running=True))
        return self._t.execute(calls.set_lane(lane, max_running=max_running))

    def stats(self) -> builtins.list[m.LaneStats]:
        return self._t.execute(calls.get_lane_stats())


class Workers(_Sync):
    def list(self) -> builtins.list[m.Worker]:
        return self._t.execute(calls.list_workers())

    def health(self) -> builtins.list[m.WorkerHealth]:
        return self._t.execute(calls.get_worker_health())

    def register(
        self,
        worker_id: str,
        *,
        host: str = "",
        pid: int | None = None,
        lanes: Iterable[str] = m.LANES,
        version: str = "",
        concurrency: int = 1,
        metadata: Mapping[str, Any] | None = None,
    ) -> m.Worker:
        return self._t.execute(
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

    def deregister(self, worker_id: str, status: str = "stopped") -> m.Worker:
        return self._t.execute(calls.deregister_worker(worker_id, status))


class Client:
    """The synchronous client. Build it with ``pulser_ops.connect()``."""

    def __init__(self, transport: Transport, *, description: str = "") -> None:
        self.transport = transport
        self.description = description
        self.runs = Runs(transport)
        self.events = Events(transport)
        self.artifacts = Artifacts(transport)
        self.templates = Templates(transport)
        self.sessions = Sessions(transport)
        self.lanes = Lanes(transport)
        self.workers = Workers(transport)
        self._subscribe_factory: Any = None

    def subscribe(
        self,
        *,
        runs: bool | Iterable[UUID | str] = False,
        events: UUID | str | Iterable[UUID | str] | None = None,
        lanes: Iterable[str] | None = None,
        workers: bool = False,
    ) -> SyncSubscription:
        """Live changes for code without asyncio: the async machinery runs on a helper thread."""
        from .subscribe import SyncSubscription

        if self._subscribe_factory is None:
            raise InvalidInput(
                "this client was not built by pulser_ops.connect(); it cannot subscribe"
            )
        return SyncSubscription(
            self._subscribe_factory, runs=runs, events=events, lanes=lanes, workers=workers
        )

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------
# async
# ------------------------------------------------------------------------------------------------


class _Async:
    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport


class AsyncRuns(_Async):
    async def create(
        self,
        template: str,
        params: Mapping[str, Any] | None = None,
        *,
        lane: str | None = None,
        priority: int = 0,
        run_after: datetime | None = None,
        idempotency_key: str | None = None,
        session_id: UUID | str | None = None,
        max_attempts: int | None = None,
    ) -> m.Run:
        req = _one_request(
            template, params, lane, priority, run_after, idempotency_key, session_id, max_attempts
        )
        return (await self._t.execute(calls.enqueue_runs([req])))[0]

    async def create_many(self, runs: Iterable[RunRequestLike]) -> builtins.list[m.Run]:
        return await self._t.execute(calls.enqueue_runs(_requests(runs)))

    async def claim(
        self,
        worker_id: str,
        *,
        lanes: Iterable[str] | str = m.LANES,
        limit: int = 1,
        lease_seconds: int | None = None,
    ) -> builtins.list[m.Run]:
        return await self._t.execute(calls.claim_runs(worker_id, lanes, limit, lease_seconds))

    async def heartbeat(
        self, run_id: UUID | str, worker_id: str, attempt: int, *, lease_seconds: int | None = None
    ) -> m.Heartbeat:
        return await self._t.execute(calls.heartbeat_run(run_id, worker_id, attempt, lease_seconds))

    async def heartbeat_many(
        self, worker_id: str, held: Iterable[tuple[UUID | str, int]]
    ) -> builtins.list[m.HeartbeatBatchItem]:
        return await self._t.execute(calls.heartbeat_runs(worker_id, held))

    async def cancel(self, run_id: UUID | str, reason: str | None = None) -> m.Run:
        return await self._t.execute(calls.cancel_run(run_id, reason))

    async def complete(
        self,
        run_id: UUID | str,
        worker_id: str,
        attempt: int,
        status: m.RunStatus | str,
        *,
        result: Any = None,
        error: str | None = None,
        error_class: str | None = None,
        retryable: bool = True,
    ) -> m.Run:
        return await self._t.execute(
            calls.complete_run(
                run_id, worker_id, attempt, str(status), result, error, error_class, retryable
            )
        )

    async def complete_many(
        self, worker_id: str, completions: Iterable[CompletionLike]
    ) -> builtins.list[m.CompleteBatchItem]:
        """Complete a batch of this worker's runs in one call (see ``Runs.complete_many``)."""
        items = _inputs(m.Completion, completions, "completions")
        if not items:
            return []
        return await self._t.execute(calls.complete_runs(worker_id, items))

    async def release(
        self, run_id: UUID | str, worker_id: str, attempt: int, reason: str | None = None
    ) -> m.Run:
        return await self._t.execute(calls.release_run(run_id, worker_id, attempt, reason))

    async def get(self, run_id: UUID | str) -> m.Run:
        return await self._t.execute(calls.get_run(run_id))

    async def get_many(self, run_ids: Iterable[UUID | str]) -> builtins.list[m.Run]:
        return await self._t.execute(calls.get_runs(run_ids))

    async def list(
        self,
        *,
        status: Iterable[str] | str | None = None,
        lane: Iterable[str] | str | None = None,
        template: str | None = None,
        session_id: UUID | str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        stuck: bool = False,
        limit: int = 100,
        after: UUID | str | None = None,
    ) -> builtins.list[m.Run]:
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

    async def stuck(self, limit: int = 100) -> builtins.list[m.StuckRun]:
        return await self._t.execute(calls.list_stuck_runs(limit))

    async def steps(self, run_id: UUID | str) -> builtins.list[m.RunStep]:
        return await self._t.execute(calls.list_run_steps(run_id))

    async def record_step(
        self,
        run_id: UUID | str,
        worker_id: str,
        attempt: int,
        idx: int,
        name: str,
        kind: str,
        status: str,
        *,
        exit_code: int | None = None,
        error: str | None = None,
        output: Any = None,
    ) -> m.RunStep:
        return await self._t.execute(
            calls.record_run_step(
                run_id, worker_id, attempt, idx, name, kind, status, exit_code, error, output
            )
        )

    async def sweep(self, limit: int = 500) -> builtins.list[m.SweepResult]:
        return await self._t.execute(calls.sweep_expired_runs(limit))

    async def prune(
        self,
        older_than: timedelta | float,
        *,
        batch: int = 500,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        total = 0
        while True:
            n = await self._delete(calls.prune_runs(older_than, batch))
            total += n
            if on_batch is not None:
                on_batch(total)
            if n < batch:
                return total

    async def delete(self, run_ids: Iterable[UUID | str]) -> int:
        return await self._delete(calls.delete_runs(run_ids))

    async def _delete(self, call: calls.Call[builtins.list[m.PruneResult]]) -> int:
        gone = await self._t.execute(call)
        if paths := _storage_paths(gone):
            await asyncio.to_thread(self._t.files.remove, paths)
        return len(gone)


class AsyncEvents(_Async):
    async def append(self, events: Sequence[EventLike]) -> builtins.list[m.RunEvent]:
        return await self._t.execute(calls.append_run_events(_events(events)))

    async def log(
        self,
        run_id: UUID | str,
        message: str,
        *,
        kind: str = "log",
        level: str = "info",
        data: Any = None,
    ) -> m.RunEvent:
        return (
            await self.append(
                [{"run_id": run_id, "kind": kind, "level": level, "message": message, "data": data}]
            )
        )[0]

    async def list(
        self, run_id: UUID | str, *, after_seq: int = 0, limit: int = 1000
    ) -> builtins.list[m.RunEvent]:
        return await self._t.execute(calls.list_run_events(run_id, after_seq, limit))


class AsyncArtifacts(_Async):
    async def put(
        self,
        run_id: UUID | str,
        name: str,
        data: str | bytes | Path,
        *,
        kind: str | None = None,
        content_type: str | None = None,
        metadata: dict[str, Any] | None = None,
        attempt: int | None = None,
        inline: bool | None = None,
    ) -> m.Artifact:
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
        await asyncio.to_thread(
            self._t.files.put, p.upload.path, p.upload.data, p.upload.content_type
        )
        try:
            return await self._t.execute(p.call)
        except PulserOpsError:
            await asyncio.to_thread(self._t.files.remove, [p.upload.path])
            raise

    async def get(self, run_id: UUID | str, name: str) -> m.Artifact:
        return await self._t.execute(calls.get_artifact(run_id, name))

    async def list(self, run_id: UUID | str) -> builtins.list[m.Artifact]:
        return await self._t.execute(calls.list_artifacts(run_id))

    async def download(self, run_id: UUID | str, name: str) -> bytes:
        a = await self.get(run_id, name)
        if a.inline_text is not None:
            return a.inline_text.encode()
        assert a.storage_path is not None
        return await asyncio.to_thread(self._t.files.get, a.storage_path)

    async def signed_url(self, run_id: UUID | str, name: str, *, expires_in: int = 3600) -> str:
        a = await self.get(run_id, name)
        if a.storage_path is None:
            raise InvalidInput(
                f"artifact {name} is stored inline; read it with get() or download()"
            )
        return await asyncio.to_thread(self._t.files.signed_url, a.storage_path, expires_in)


class AsyncTemplates(_Async):
    async def list(self) -> builtins.list[m.Template]:
        return await self._t.execute(calls.list_templates())

    async def get(self, name: str) -> m.Template:
        return await self._t.execute(calls.get_template(name))

    async def upsert(self, template: m.Template | Mapping[str, Any]) -> m.Template:
        return await self._t.execute(calls.upsert_template(_template_json(template)))

    async def upsert_many(
        self, templates: Iterable[m.Template | Mapping[str, Any]]
    ) -> builtins.list[m.Template]:
        """Create or update several templates in one transaction: all of them, or none."""
        return await self._t.execute(calls.upsert_templates([_template_json(t) for t in templates]))


class AsyncSessions(_Async):
    async def create(
        self, title: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> m.Session:
        return await self._t.execute(calls.create_session(title, metadata))

    async def list(self, limit: int = 100) -> builtins.list[m.Session]:
        return await self._t.execute(calls.list_sessions(limit))


class AsyncLanes(_Async):
    async def list(self) -> builtins.list[m.Lane]:
        return await self._t.execute(calls.list_lanes())

    async def pause(self, lane: str) -> m.Lane:
        return await self._t.execute(calls.set_lane(lane, paused=True))

    async def resume(self, lane: str) -> m.Lane:
        return await self._t.execute(calls.set_lane(lane, paused=False))

    async def set_concurrency(self, lane: str, max_running: int | None) -> m.Lane:
        if max_running is None:
            return await self._t.execute(calls.set_lane(lane, clear_max_running=True))
        return await self._t.execute(calls.set_lane(lane, max_running=max_running))

    async def stats(self) -> builtins.list[m.LaneStats]:
        return await self._t.execute(calls.get_lane_stats())


class AsyncWorkers(_Async):
    async def list(self) -> builtins.list[m.Worker]:
        return await self._t.execute(calls.list_workers())

    async def health(self) -> builtins.list[m.WorkerHealth]:
        return await self._t.execute(calls.get_worker_health())

    async def register(
        self,
        worker_id: str,
        *,
        host: str = "",
        pid: int | None = None,
        lanes: Iterable[str] = m.LANES,
        version: str = "",
        concurrency: int = 1,
        metadata: Mapping[str, Any] | None = None,
    ) -> m.Worker:
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

    async def deregister(self, worker_id: str, status: str = "stopped") -> m.Worker:
        return await self._t.execute(calls.deregister_worker(worker_id, status))


class AsyncClient:
    """The asyncio client. Build it with ``await pulser_ops.aconnect()``."""

    def __init__(self, transport: AsyncTransport, *, description: str = "") -> None:
        self.transport = transport
        self.description = description
        self.runs = AsyncRuns(transport)
        self.events = AsyncEvents(transport)
        self.artifacts = AsyncArtifacts(transport)
        self.templates = AsyncTemplates(transport)
        self.sessions = AsyncSessions(transport)
        self.lanes = AsyncLanes(transport)
        self.workers = AsyncWorkers(transport)

    def subscribe(
        self,
        *,
        runs: bool | Iterable[UUID | str] = False,
        events: UUID | str | Iterable[UUID | str] | None = None,
        lanes: Iterable[str] | None = None,
        workers: bool = False,
        since: datetime | None = None,
    ) -> AsyncIterator[m.Change]:
        """``async for change in client.subscribe(runs=True, events=run_id)``: live changes.

        Reconnects by itself and catches up after every (re)connect, so no change is missed;
        a change may be delivered twice around a reconnect but never out of order for a run.
        """
        from .subscribe import subscribe

        return subscribe(self, runs=runs, events=events, lanes=lanes, workers=workers, since=since)

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
