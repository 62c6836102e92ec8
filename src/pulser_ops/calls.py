"""Every call the SDK makes to the control plane, in one place.

A ``Call`` names a SQL function in ``public``, its named arguments (with their PostgreSQL types,
so the direct transport can cast exactly), how to decode the rows, and whether repeating it after
a lost response is safe. Transports only know how to *execute* a ``Call``; they never build SQL
of their own, so both transports run the very same functions with the very same arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel, TypeAdapter
from pydantic_core import from_json

from . import models as m
from .errors import InvalidInput

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Arg:
    value: Any
    pgtype: str


@dataclass(frozen=True)
class Decode(Generic[T]):
    """How a call's result becomes models, from either shape a transport receives.

    PostgREST answers an RPC with one JSON array of rows, which supabase-py hands over parsed
    (``rows``). The direct transport asks PostgreSQL for that same array as text (``json``), so
    pydantic-core validates it without a Python object per value: for a claim of 100 runs that
    is a third of the SDK's CPU per run. Both shapes carry the same values."""

    rows: Callable[[Sequence[Row]], T]
    json: Callable[[str], T]
    #: The call returns a set of rows (a list), which an API row cap can cut (``Paging``).
    is_set: bool = False

    @classmethod
    def from_rows(cls, rows: Callable[[Sequence[Row]], T]) -> Decode[T]:
        return cls(rows, lambda text: rows(from_json(text)))


@dataclass(frozen=True)
class Paging:
    """How a call that returns rows goes through an API that answers with at most
    ``max_rows`` rows per call (PostgREST's ``db-max-rows``: 1000 on Supabase). The function
    still runs in full there and only the reply is cut, so a call that could return more is
    sent in parts, each at or under the cap, and every row the SQL touched is accounted for:

    - ``each``: a list argument whose items yield at most one row each (enqueue, complete,
      heartbeat, get or delete by id): sent in slices of at most ``max_rows`` items, the rows
      joined (``order`` restores the SQL's order across slices);
    - ``limit`` with ``after``: a keyset read (list_runs, runs_changed_since, events, search):
      pages of at most ``max_rows``, each continuing after the last row of the one before;
    - ``limit`` alone: the call uses its rows up (claim, sweep, prune): sent again with at most
      ``max_rows`` until it comes back short or the limit is reached.

    Any other set-returning call is sent whole; if its reply is cut anyway (the project's cap
    is lower than configured), a read is continued from where the reply stopped and a write
    fails with ``ConfigurationError`` (see ``transport/paging.py``)."""

    each: str | None = None
    limit: str | None = None
    after: Callable[[Mapping[str, Arg], Row], dict[str, Arg]] | None = None
    order: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class Call(Generic[T]):
    fn: str
    args: Mapping[str, Arg]
    decode: Decode[T]
    #: Safe to send again when the response was lost (reads, fenced upserts, keyed enqueues).
    retry_safe: bool = False
    #: STABLE functions: PostgREST may run them read-only (GET); psycopg does not care.
    read_only: bool = False
    #: Milliseconds for the statement before PostgreSQL cancels it (``statement_timeout``),
    #: armed by the direct transport for this call alone; over Supabase the API role's own
    #: timeout applies. For functions that catch the cancel and answer from estimates.
    statement_timeout_ms: int | None = None
    #: How to send it under an API row cap; None: one row, or a plain set (see ``Paging``).
    paging: Paging | None = None

    def with_args(self, **changed: Arg) -> Call[T]:
        """The same call with some arguments replaced (a slice, a page, a smaller limit)."""
        return replace(self, args={**self.args, **changed})


def _args(**kwargs: tuple[Any, str]) -> dict[str, Arg]:
    """Named arguments, leaving out the ones that are None so the SQL defaults apply."""
    return {k: Arg(v, t) for k, (v, t) in kwargs.items() if v is not None}


@cache
def _list_of(model: type[M]) -> TypeAdapter[list[M]]:
    # Built once per model (building one costs far more than using it); one validator call per
    # result, so a claim of 100 runs is one call into pydantic-core, not 100.
    return TypeAdapter(list[model])  # type: ignore[valid-type]


@cache
def one(model: type[M]) -> Decode[M]:
    def single(found: list[M]) -> M:
        if len(found) != 1:
            raise InvalidInput(f"expected one {model.__name__}, got {len(found)} rows")
        return found[0]

    rows_of = _list_of(model)
    return Decode(
        lambda rows: single(rows_of.validate_python(rows)),
        lambda text: single(rows_of.validate_json(text)),
    )


@cache
def many(model: type[M]) -> Decode[list[M]]:
    rows_of = _list_of(model)
    return Decode(rows_of.validate_python, rows_of.validate_json, is_set=True)


def _uuid(value: UUID | str, name: str) -> str:
    try:
        return str(value if isinstance(value, UUID) else UUID(str(value)))
    except (ValueError, AttributeError, TypeError):
        got = repr(value[:60]) if isinstance(value, str) else type(value).__name__
        raise InvalidInput(f"{name}: not a uuid ({got})") from None


def _object(value: Any, name: str) -> dict[str, Any] | None:
    """A JSON object argument; anything but a mapping is the caller's mistake, not a crash."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{name}: expected an object (a mapping), got {type(value).__name__}")
    return dict(value)


def _seconds(value: timedelta | float | int | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


def lane_list(lanes: Iterable[str] | str | None) -> list[str] | None:
    """Lanes as a list (``"A,B"`` or an iterable); None stays None."""
    if lanes is None:
        return None
    if isinstance(lanes, str):
        return [x.strip() for x in lanes.split(",") if x.strip()]
    return list(lanes)


def _each(arg: str, order: Callable[[Any], Any] | None = None) -> Paging:
    return Paging(each=arg, order=order)


def _drain(arg: str) -> Paging:
    return Paging(limit=arg)


def _by_created(runs: list[m.Run]) -> list[m.Run]:
    return sorted(runs, key=lambda r: (r.created_at, r.id))


def _after_run_id(args: Mapping[str, Arg], last: Row) -> dict[str, Arg]:
    return {"after_id": Arg(str(last["id"]), "uuid")}


def _after_change(args: Mapping[str, Arg], last: Row) -> dict[str, Arg]:
    return {"since": Arg(str(last["updated_at"]), "timestamptz"),
            "after_id": Arg(str(last["id"]), "uuid")}  # fmt: skip


def _after_seq(args: Mapping[str, Arg], last: Row) -> dict[str, Arg]:
    return {"after_seq": Arg(int(last["seq"]), "bigint")}


def _after_created(args: Mapping[str, Arg], last: Row) -> dict[str, Arg]:
    cursor = {"created_at": str(last["created_at"]), "id": str(last["id"])}
    return {"filter": Arg({**args["filter"].value, "before": cursor}, "jsonb")}


# --- runs ---------------------------------------------------------------------------------------


def _run_request_json(req: m.RunRequest) -> dict[str, Any]:
    return req.model_dump(mode="json", exclude_none=True)


def enqueue_runs(requests: Sequence[m.RunRequest]) -> Call[list[m.Run]]:
    keyed = all(r.idempotency_key for r in requests)
    return Call(
        "enqueue_runs",
        _args(runs=([_run_request_json(r) for r in requests], "jsonb")),
        many(m.Run),
        retry_safe=keyed,
        paging=_each("runs"),
    )


def claim_runs(
    worker_id: str, lanes: Iterable[str] | str | None, limit: int, lease_seconds: int | None
) -> Call[list[m.Run]]:
    return Call(
        "claim_runs",
        _args(
            worker_id=(worker_id, "text"),
            lanes=(lane_list(lanes), "text[]"),
            max_runs=(limit, "integer"),
            lease_seconds=(lease_seconds, "integer"),
        ),
        many(m.Run),
        paging=_drain("max_runs"),
    )


def heartbeat_run(
    run_id: UUID | str, worker_id: str, attempt: int, lease_seconds: int | None
) -> Call[m.Heartbeat]:
    return Call(
        "heartbeat_run",
        _args(
            run_id=(_uuid(run_id, "run_id"), "uuid"),
            worker_id=(worker_id, "text"),
            attempt=(attempt, "integer"),
            lease_seconds=(lease_seconds, "integer"),
        ),
        one(m.Heartbeat),
        retry_safe=True,
    )


def heartbeat_runs(
    worker_id: str, held: Iterable[tuple[UUID | str, int]]
) -> Call[list[m.HeartbeatBatchItem]]:
    runs = [{"run_id": _uuid(r, "run_id"), "attempt": a} for r, a in held]
    return Call(
        "heartbeat_runs",
        _args(worker_id=(worker_id, "text"), runs=(runs, "jsonb")),
        many(m.HeartbeatBatchItem),
        retry_safe=True,
        paging=_each("runs"),
    )


def cancel_run(run_id: UUID | str, reason: str | None) -> Call[m.Run]:
    return Call(
        "cancel_run",
        _args(run_id=(_uuid(run_id, "run_id"), "uuid"), reason=(reason, "text")),
        one(m.Run),
    )


def complete_run(
    run_id: UUID | str,
    worker_id: str,
    attempt: int,
    status: str,
    result: Any,
    error: str | None,
    error_class: str | None,
    retryable: bool,
) -> Call[m.Run]:
    return Call(
        "complete_run",
        _args(
            run_id=(_uuid(run_id, "run_id"), "uuid"),
            worker_id=(worker_id, "text"),
            attempt=(attempt, "integer"),
            status=(str(status), "text"),
            result=(result, "jsonb"),
            error=(error, "text"),
            error_class=(error_class, "text"),
            retryable=(retryable, "boolean"),
        ),
        one(m.Run),
        retry_safe=True,
    )


def step_row_item(
    idx: int,
    name: str,
    kind: str,
    status: str,
    exit_code: int | None = None,
    error: str | None = None,
    output: Any = None,
    started_at: datetime | None = None,
) -> dict[str, Any]:
    """A step row as ``complete_runs`` takes it (``runs[].steps[]``)."""
    out = {
        "idx": idx,
        "name": name,
        "kind": kind,
        "status": status,
        "exit_code": exit_code,
        "error": error,
        "output": output,
    }
    if started_at is not None:
        out["started_at"] = started_at.isoformat()
    return out


def completion_item(
    run_id: UUID | str,
    attempt: int,
    status: str,
    result: Any = None,
    error: str | None = None,
    error_class: str | None = None,
    retryable: bool = True,
    steps: list[dict[str, Any]] | None = None,
    events: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One completion as ``complete_runs`` takes it (``runs[]``); ``steps`` are
    :func:`step_row_item` values, ``events`` ``{"kind", "level", "message", "data"}`` objects."""
    return {
        "run_id": str(run_id),
        "attempt": attempt,
        "status": str(status),
        "result": result,
        "error": error,
        "error_class": error_class,
        "retryable": retryable,
        "steps": steps,
        "events": events,
    }


def complete_runs(
    worker_id: str, completions: Sequence[m.Completion]
) -> Call[list[m.CompleteBatchItem]]:
    return complete_runs_items(
        worker_id,
        [
            completion_item(
                c.run_id,
                c.attempt,
                c.status,
                c.result,
                c.error,
                c.error_class,
                c.retryable,
                None if c.steps is None else [step_row_item(**dict(r)) for r in c.steps],
                None if c.events is None else [e.model_dump() for e in c.events],
            )
            for c in completions
        ],
    )


def complete_runs_items(
    worker_id: str, items: Sequence[Mapping[str, Any]]
) -> Call[list[m.CompleteBatchItem]]:
    """``complete_runs`` with its items already in the shape it takes (:func:`completion_item`):
    the reference worker builds them so, without a model per run."""
    return Call(
        "complete_runs",
        _args(worker_id=(worker_id, "text"), runs=(list(items), "jsonb")),
        many(m.CompleteBatchItem),
        retry_safe=True,
        paging=_each("runs"),
    )


def release_run(
    run_id: UUID | str, worker_id: str, attempt: int, reason: str | None
) -> Call[m.Run]:
    return Call(
        "release_run",
        _args(
            run_id=(_uuid(run_id, "run_id"), "uuid"),
            worker_id=(worker_id, "text"),
            attempt=(attempt, "integer"),
            reason=(reason, "text"),
        ),
        one(m.Run),
    )


def list_held_runs(worker_id: str) -> Call[list[m.Run]]:
    """The runs running under ``worker_id``: after a claim whose reply was lost, the worker
    finds the runs the database gave it (service role only)."""
    return Call(
        "list_held_runs",
        _args(worker_id=(worker_id, "text")),
        many(m.Run),
        retry_safe=True,
        read_only=True,
    )


def get_run(run_id: UUID | str) -> Call[m.Run]:
    return Call(
        "get_run",
        _args(run_id=(_uuid(run_id, "run_id"), "uuid")),
        one(m.Run),
        retry_safe=True,
        read_only=True,
    )


def get_run_on_behalf_of(run_id: UUID | str, of_run: UUID | str) -> Call[m.Run]:
    return Call(
        "get_run_on_behalf_of",
        _args(run_id=(_uuid(run_id, "run_id"), "uuid"), of_run=(_uuid(of_run, "of_run"), "uuid")),
        one(m.Run),
        retry_safe=True,
        read_only=True,
    )


def get_runs(run_ids: Iterable[UUID | str]) -> Call[list[m.Run]]:
    ids = [_uuid(r, "run_ids") for r in run_ids]
    return Call(
        "get_runs",
        _args(run_ids=(ids, "uuid[]")),
        many(m.Run),
        retry_safe=True,
        read_only=True,
        paging=_each("run_ids", order=_by_created),
    )


def list_runs(
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
) -> Call[list[m.Run]]:
    statuses = [status] if isinstance(status, str) else (list(status) if status else None)
    return Call(
        "list_runs",
        _args(
            status=([str(s) for s in statuses] if statuses else None, "text[]"),
            lanes=(lane_list(lane), "text[]"),
            template=(template, "text"),
            session_id=(_uuid(session_id, "session_id") if session_id else None, "uuid"),
            created_after=(created_after.isoformat() if created_after else None, "timestamptz"),
            created_before=(created_before.isoformat() if created_before else None, "timestamptz"),
            stuck=(stuck or None, "boolean"),
            max_rows=(limit, "integer"),
            after_id=(_uuid(after, "after") if after else None, "uuid"),
        ),
        many(m.Run),
        retry_safe=True,
        read_only=True,
        paging=Paging(limit="max_rows", after=_after_run_id),
    )


def runs_changed_since(
    since: datetime, lanes: Iterable[str] | None, limit: int = 1000
) -> Call[list[m.Run]]:
    return Call(
        "runs_changed_since",
        _args(
            since=(since.isoformat(), "timestamptz"),
            lanes=(lane_list(lanes), "text[]"),
            max_rows=(limit, "integer"),
        ),
        many(m.Run),
        retry_safe=True,
        read_only=True,
        paging=Paging(limit="max_rows", after=_after_change),
    )


def list_stuck_runs(limit: int = 100) -> Call[list[m.StuckRun]]:
    return Call(
        "list_stuck_runs",
        _args(max_rows=(limit, "integer")),
        many(m.StuckRun),
        retry_safe=True,
        read_only=True,
    )


def sweep_expired_runs(limit: int) -> Call[list[m.SweepResult]]:
    return Call(
        "sweep_expired_runs",
        _args(max_runs=(limit, "integer")),
        many(m.SweepResult),
        paging=_drain("max_runs"),
    )


def prune_runs(older_than: timedelta | float, limit: int) -> Call[list[m.PruneResult]]:
    return Call(
        "prune_runs",
        _args(older_than_seconds=(_seconds(older_than), "numeric"), max_runs=(limit, "integer")),
        many(m.PruneResult),
        paging=_drain("max_runs"),
    )


# --- steps, events, artifacts ----------------------------------------------------------------


def record_run_step(
    run_id: UUID | str,
    worker_id: str,
    attempt: int,
    idx: int,
    name: str,
    kind: str,
    status: str,
    exit_code: int | None = None,
    error: str | None = None,
    output: Any = None,
) -> Call[m.RunStep]:
    return Call(
        "record_run_step",
        _args(
            run_id=(_uuid(run_id, "run_id"), "uuid"),
            worker_id=(worker_id, "text"),
            attempt=(attempt, "integer"),
            idx=(idx, "integer"),
            name=(name, "text"),
            kind=(kind, "text"),
            status=(status, "text"),
            exit_code=(exit_code, "integer"),
            error=(error, "text"),
            output=(output, "jsonb"),
        ),
        one(m.RunStep),
        retry_safe=True,
    )


def list_run_steps(run_id: UUID | str) -> Call[list[m.RunStep]]:
    return Call(
        "list_run_steps",
        _args(run_id=(_uuid(run_id, "run_id"), "uuid")),
        many(m.RunStep),
        retry_safe=True,
        read_only=True,
    )


def append_run_events(events: Sequence[m.EventIn]) -> Call[list[m.RunEvent]]:
    payload = [e.model_dump(mode="json", exclude_none=True) for e in events]
    return Call(
        "append_run_events",
        _args(events=(payload, "jsonb")),
        many(m.RunEvent),
        paging=_each("events"),
    )


def list_run_events(run_id: UUID | str, after_seq: int, limit: int) -> Call[list[m.RunEvent]]:
    return Call(
        "list_run_events",
        _args(
            run_id=(_uuid(run_id, "run_id"), "uuid"),
            after_seq=(after_seq, "bigint"),
            max_rows=(limit, "integer"),
        ),
        many(m.RunEvent),
        retry_safe=True,
        read_only=True,
        paging=Paging(limit="max_rows", after=_after_seq),
    )


def list_run_timeline(run_id: UUID | str, limit: int = 500) -> Call[list[m.RunEvent]]:
    return Call(
        "list_run_timeline",
        _args(run_id=(_uuid(run_id, "run_id"), "uuid"), max_rows=(limit, "integer")),
        many(m.RunEvent),
        retry_safe=True,
        read_only=True,
    )


def list_last_run_events(run_id: UUID | str, limit: int = 20) -> Call[list[m.RunEvent]]:
    return Call(
        "list_last_run_events",
        _args(run_id=(_uuid(run_id, "run_id"), "uuid"), max_rows=(limit, "integer")),
        many(m.RunEvent),
        retry_safe=True,
        read_only=True,
    )


def put_artifact(
    run_id: UUID | str,
    name: str,
    *,
    kind: str,
    content_type: str | None,
    inline_text: str | None = None,
    storage_path: str | None = None,
    size_bytes: int | None = None,
    sha256: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    attempt: int | None = None,
) -> Call[m.Artifact]:
    return Call(
        "put_artifact",
        _args(
            run_id=(_uuid(run_id, "run_id"), "uuid"),
            name=(name, "text"),
            kind=(kind, "text"),
            content_type=(content_type, "text"),
            inline_text=(inline_text, "text"),
            storage_path=(storage_path, "text"),
            size_bytes=(size_bytes, "bigint"),
            sha256=(sha256, "text"),
            metadata=(_object(metadata, "metadata"), "jsonb"),
            attempt=(attempt, "integer"),
        ),
        one(m.Artifact),
        retry_safe=True,
    )


def get_artifact(run_id: UUID | str, name: str, attempt: int | None = None) -> Call[m.Artifact]:
    """``attempt`` None: the latest attempt that saved ``name``."""
    return Call(
        "get_artifact",
        _args(
            run_id=(_uuid(run_id, "run_id"), "uuid"),
            name=(name, "text"),
            attempt=(attempt, "integer"),
        ),
        one(m.Artifact),
        retry_safe=True,
        read_only=True,
    )


def list_artifacts(run_id: UUID | str) -> Call[list[m.Artifact]]:
    return Call(
        "list_artifacts",
        _args(run_id=(_uuid(run_id, "run_id"), "uuid")),
        many(m.Artifact),
        retry_safe=True,
        read_only=True,
    )


# --- templates, sessions, lanes, workers ------------------------------------------------------


def upsert_template(template: Mapping[str, Any]) -> Call[m.Template]:
    return Call(
        "upsert_template",
        _args(template=(_object(template, "template"), "jsonb")),
        one(m.Template),
        retry_safe=True,
    )


def upsert_templates(templates: Sequence[Mapping[str, Any]]) -> Call[list[m.Template]]:
    return Call(
        "upsert_templates",
        _args(
            templates=(
                [_object(t, f"templates[{i}]") for i, t in enumerate(templates)],
                "jsonb",
            )
        ),
        many(m.Template),
        retry_safe=True,
        paging=_each("templates"),
    )


def list_templates() -> Call[list[m.Template]]:
    return Call("list_templates", {}, many(m.Template), retry_safe=True, read_only=True)


def get_template(name: str) -> Call[m.Template]:
    return Call(
        "get_template", _args(name=(name, "text")), one(m.Template), retry_safe=True, read_only=True
    )


def get_template_version(name: str, version: int) -> Call[m.Template]:
    return Call(
        "get_template_version",
        _args(name=(name, "text"), version=(version, "integer")),
        one(m.Template),
        retry_safe=True,
        read_only=True,
    )


def list_template_versions(name: str, limit: int = 100) -> Call[list[m.TemplateVersion]]:
    return Call(
        "list_template_versions",
        _args(name=(name, "text"), max_rows=(limit, "integer")),
        many(m.TemplateVersion),
        retry_safe=True,
        read_only=True,
    )


def list_template_summaries() -> Call[list[m.TemplateSummary]]:
    return Call(
        "list_template_summaries", {}, many(m.TemplateSummary), retry_safe=True, read_only=True
    )


def validate_template(template: Any) -> Call[list[m.FieldProblem]]:
    """Any JSON value: the SQL names what is wrong with it (nothing is written)."""
    return Call(
        "validate_template",
        {"template": Arg(template, "jsonb")},
        many(m.FieldProblem),
        retry_safe=True,
        read_only=True,
    )


def validate_params(template: str, params: Any) -> Call[list[m.FieldProblem]]:
    return Call(
        "validate_params",
        {"template": Arg(template, "text"), "params": Arg(params, "jsonb")},
        many(m.FieldProblem),
        retry_safe=True,
        read_only=True,
    )


def delete_template(name: str) -> Call[m.Template]:
    return Call("delete_template", _args(name=(name, "text")), one(m.Template))


# --- schedules: recurring runs ----------------------------------------------------------------


def list_schedules() -> Call[list[m.Schedule]]:
    return Call("list_schedules", {}, many(m.Schedule), retry_safe=True, read_only=True)


def get_schedule(name: str) -> Call[m.Schedule]:
    return Call(
        "get_schedule", _args(name=(name, "text")), one(m.Schedule), retry_safe=True, read_only=True
    )


def upsert_schedule(schedule: Mapping[str, Any]) -> Call[m.Schedule]:
    return Call(
        "upsert_schedule",
        _args(schedule=(_object(schedule, "schedule"), "jsonb")),
        one(m.Schedule),
        retry_safe=True,
    )


def upsert_schedules(schedules: Sequence[Mapping[str, Any]]) -> Call[list[m.Schedule]]:
    return Call(
        "upsert_schedules",
        _args(
            schedules=(
                [_object(x, f"schedules[{i}]") for i, x in enumerate(schedules)],
                "jsonb",
            )
        ),
        many(m.Schedule),
        retry_safe=True,
    )


def set_schedule_enabled(name: str, enabled: bool) -> Call[m.Schedule]:
    return Call(
        "set_schedule_enabled",
        _args(name=(name, "text"), enabled=(enabled, "boolean")),
        one(m.Schedule),
        retry_safe=True,
    )


def delete_schedule(name: str) -> Call[m.Schedule]:
    """Not retry-safe: a resend after a lost reply would answer "not found"."""
    return Call("delete_schedule", _args(name=(name, "text")), one(m.Schedule))


def preview_schedule(cron: str, timezone: str, count: int) -> Call[list[m.ScheduleTime]]:
    return Call(
        "preview_schedule",
        _args(cron=(cron, "text"), timezone=(timezone, "text"), count=(count, "integer")),
        many(m.ScheduleTime),
        retry_safe=True,
        read_only=True,
    )


def enqueue_due_schedules(limit: int) -> Call[list[m.ScheduleFire]]:
    """Retry-safe: a due time's run is keyed by the schedule and that time, so a resend finds
    the same run (or nothing due any more)."""
    return Call(
        "enqueue_due_schedules",
        _args(max_runs=(limit, "integer")),
        many(m.ScheduleFire),
        retry_safe=True,
        paging=_drain("max_runs"),
    )


def create_session(title: str | None, metadata: Mapping[str, Any] | None) -> Call[m.Session]:
    return Call(
        "create_session",
        _args(title=(title, "text"), metadata=(_object(metadata, "metadata") or None, "jsonb")),
        one(m.Session),
    )


def delete_session(session_id: UUID | str) -> Call[m.SessionDeleted]:
    """Not retry-safe: a resend after a lost reply would answer "not found"."""
    return Call(
        "delete_session",
        _args(session_id=(_uuid(session_id, "session_id"), "uuid")),
        one(m.SessionDeleted),
    )


def list_sessions(limit: int = 100) -> Call[list[m.Session]]:
    return Call(
        "list_sessions",
        _args(max_rows=(limit, "integer")),
        many(m.Session),
        retry_safe=True,
        read_only=True,
    )


def list_session_summaries(limit: int = 100) -> Call[list[m.SessionSummary]]:
    return Call(
        "list_session_summaries",
        _args(max_rows=(limit, "integer")),
        many(m.SessionSummary),
        retry_safe=True,
        read_only=True,
    )


def add_session_messages(
    session_id: UUID | str, messages: Sequence[m.MessageIn]
) -> Call[list[m.SessionMessage]]:
    return Call(
        "add_session_messages",
        _args(
            session_id=(_uuid(session_id, "session_id"), "uuid"),
            messages=([x.model_dump(mode="json", exclude_none=True) for x in messages], "jsonb"),
        ),
        many(m.SessionMessage),
    )


def list_session_messages(
    session_id: UUID | str, *, before_id: int | None = None, limit: int = 200
) -> Call[list[m.SessionMessage]]:
    return Call(
        "list_session_messages",
        _args(
            session_id=(_uuid(session_id, "session_id"), "uuid"),
            before_id=(before_id, "bigint"),
            max_rows=(limit, "integer"),
        ),
        many(m.SessionMessage),
        retry_safe=True,
        read_only=True,
    )


def list_session_runs(session_id: UUID | str, limit: int = 100) -> Call[list[m.SessionRun]]:
    return Call(
        "list_session_runs",
        _args(session_id=(_uuid(session_id, "session_id"), "uuid"), max_rows=(limit, "integer")),
        many(m.SessionRun),
        retry_safe=True,
        read_only=True,
    )


def put_spec_docs(
    run_id: UUID | str, worker_id: str, attempt: int, docs: Sequence[m.SpecDocIn]
) -> Call[list[m.SpecDoc]]:
    payload = [d.model_dump(mode="json") for d in docs]
    return Call(
        "put_spec_docs",
        _args(
            run_id=(_uuid(run_id, "run_id"), "uuid"),
            worker_id=(worker_id, "text"),
            attempt=(attempt, "integer"),
            docs=(payload, "jsonb"),
        ),
        many(m.SpecDoc),
        retry_safe=True,  # fenced, and an upsert per (run, path)
    )


def list_spec_docs(
    run_id: UUID | str | None = None, session_id: UUID | str | None = None, limit: int = 100
) -> Call[list[m.SpecDoc]]:
    return Call(
        "list_spec_docs",
        _args(
            run_id=(None if run_id is None else _uuid(run_id, "run_id"), "uuid"),
            session_id=(None if session_id is None else _uuid(session_id, "session_id"), "uuid"),
            max_rows=(limit, "integer"),
        ),
        many(m.SpecDoc),
        retry_safe=True,
        read_only=True,
    )


def list_lanes() -> Call[list[m.Lane]]:
    return Call("list_lanes", {}, many(m.Lane), retry_safe=True, read_only=True)


def set_lane(
    lane: str,
    *,
    paused: bool | None = None,
    max_running: int | None = None,
    clear_max_running: bool = False,
) -> Call[m.Lane]:
    return Call(
        "set_lane",
        _args(
            lane=(lane, "text"),
            paused=(paused, "boolean"),
            max_running=(max_running, "integer"),
            clear_max_running=(clear_max_running or None, "boolean"),
        ),
        one(m.Lane),
        retry_safe=True,
    )


def get_lane_stats() -> Call[list[m.LaneStats]]:
    return Call("get_lane_stats", {}, many(m.LaneStats), retry_safe=True, read_only=True)


def list_workers() -> Call[list[m.WorkerInfo]]:
    return Call("list_workers", {}, many(m.WorkerInfo), retry_safe=True, read_only=True)


def get_worker_health() -> Call[list[m.WorkerHealth]]:
    return Call("get_worker_health", {}, many(m.WorkerHealth), retry_safe=True, read_only=True)


def register_worker(
    worker_id: str,
    *,
    host: str,
    pid: int | None,
    lanes: Iterable[str],
    version: str,
    concurrency: int,
    metadata: Mapping[str, Any] | None = None,
) -> Call[m.WorkerInfo]:
    return Call(
        "register_worker",
        _args(
            worker_id=(worker_id, "text"),
            host=(host, "text"),
            pid=(pid, "integer"),
            lanes=(lane_list(lanes), "text[]"),
            version=(version, "text"),
            concurrency=(concurrency, "integer"),
            metadata=(_object(metadata, "metadata") or None, "jsonb"),
        ),
        one(m.WorkerInfo),
        retry_safe=True,
    )


def deregister_worker(worker_id: str, status: str = "stopped") -> Call[m.WorkerInfo]:
    return Call(
        "deregister_worker",
        _args(worker_id=(worker_id, "text"), status=(status, "text")),
        one(m.WorkerInfo),
        retry_safe=True,
    )


def delete_runs(run_ids: Iterable[UUID | str]) -> Call[list[m.PruneResult]]:
    ids = [_uuid(r, "run_ids") for r in run_ids]
    return Call(
        "delete_runs",
        _args(run_ids=(ids, "uuid[]")),
        many(m.PruneResult),
        retry_safe=True,
        paging=_each("run_ids"),
    )


def _info(rows: Sequence[Row]) -> dict[str, Any]:
    value = rows[0].get("info") if len(rows) == 1 else None
    if not isinstance(value, dict):
        raise InvalidInput("control_plane_info returned no object")
    return value


def control_plane_info() -> Call[dict[str, Any]]:
    """What `pulser-ops doctor` checks: applied migrations, functions, publication, bucket."""
    return Call("control_plane_info", {}, Decode.from_rows(_info), retry_safe=True, read_only=True)


# --- the control room: board, search, count, bulk actions, re-run ----------------------------


def _document(fn: str, column: str, model: type[M]) -> Decode[M]:
    """A function answering one row whose ``column`` holds a JSON document (two columns, so
    PostgREST does not unwrap it like a scalar), as ``model``."""

    def decode(rows: Sequence[Row]) -> M:
        if len(rows) != 1:
            raise InvalidInput(f"{fn} returned {len(rows)} rows")
        return model.model_validate(rows[0][column])

    return Decode.from_rows(decode)


def board_snapshot(running_limit: int = 100) -> Call[m.BoardSnapshot]:
    return Call(
        "board_snapshot",
        _args(running_limit=(running_limit, "integer")),
        _document("board_snapshot", "board", m.BoardSnapshot),
        retry_safe=True,
        read_only=True,
    )


def _filter(value: m.RunFilter | Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, m.RunFilter):
        return value.to_json()
    try:
        return m.RunFilter.model_validate(value).to_json()
    except ValueError as e:
        raise InvalidInput(f"filter: {e}") from None


def search_runs(filter: m.RunFilter | Mapping[str, Any] | None, limit: int) -> Call[list[m.Run]]:
    return Call(
        "search_runs",
        _args(filter=(_filter(filter), "jsonb"), max_rows=(limit, "integer")),
        many(m.Run),
        retry_safe=True,
        read_only=True,
        paging=Paging(limit="max_rows", after=_after_created),
    )


def count_runs(
    filter: m.RunFilter | Mapping[str, Any] | None, max_exact: int | None = None
) -> Call[m.RunCount]:
    # Not read-only for PostgREST: the estimate runs EXPLAIN, which a STABLE function may not.
    return Call(
        "count_runs",
        _args(filter=(_filter(filter), "jsonb"), max_exact=(max_exact, "integer")),
        one(m.RunCount),
        retry_safe=True,
    )


def _bulk_target(
    run_ids: Iterable[UUID | str] | None, filter: m.RunFilter | Mapping[str, Any] | None
) -> dict[str, tuple[Any, str]]:
    if (run_ids is None) == (filter is None):
        raise InvalidInput("give either run_ids or a filter")
    if run_ids is not None:
        return {"run_ids": ([_uuid(r, "run_ids") for r in run_ids], "uuid[]")}
    return {"filter": (_filter(filter), "jsonb")}


def bulk_cancel_runs(
    run_ids: Iterable[UUID | str] | None,
    filter: m.RunFilter | Mapping[str, Any] | None,
    *,
    max_runs: int,
    dry_run: bool,
    reason: str | None = None,
) -> Call[m.BulkResult]:
    return Call(
        "bulk_cancel_runs",
        _args(
            **_bulk_target(run_ids, filter),
            max_runs=(max_runs, "integer"),
            dry_run=(dry_run, "boolean"),
            reason=(reason, "text"),
        ),
        one(m.BulkResult),
        retry_safe=dry_run,
    )


def _bulk(
    name: str,
    run_ids: Iterable[UUID | str] | None,
    filter: m.RunFilter | Mapping[str, Any] | None,
    max_runs: int,
    dry_run: bool,
) -> Call[m.BulkResult]:
    return Call(
        name,
        _args(
            **_bulk_target(run_ids, filter),
            max_runs=(max_runs, "integer"),
            dry_run=(dry_run, "boolean"),
        ),
        one(m.BulkResult),
        retry_safe=dry_run,
    )


def bulk_rerun_runs(
    run_ids: Iterable[UUID | str] | None,
    filter: m.RunFilter | Mapping[str, Any] | None,
    *,
    max_runs: int,
    dry_run: bool,
) -> Call[m.BulkResult]:
    return _bulk("bulk_rerun_runs", run_ids, filter, max_runs, dry_run)


def bulk_run_now(
    run_ids: Iterable[UUID | str] | None,
    filter: m.RunFilter | Mapping[str, Any] | None,
    *,
    max_runs: int,
    dry_run: bool,
) -> Call[m.BulkResult]:
    return _bulk("bulk_run_now", run_ids, filter, max_runs, dry_run)


def run_now(run_id: UUID | str) -> Call[m.Run]:
    """Setting a waiting run's time to now twice is the same as once: safe to retry."""
    return Call(
        "run_now", _args(run_id=(_uuid(run_id, "run_id"), "uuid")), one(m.Run), retry_safe=True
    )


def rerun_run(
    run_id: UUID | str, params: Mapping[str, Any] | None = None, lane: str | None = None
) -> Call[m.Run]:
    return Call(
        "rerun_run",
        _args(
            run_id=(_uuid(run_id, "run_id"), "uuid"),
            params=(_object(params, "params"), "jsonb"),
            lane=(lane, "text"),
        ),
        one(m.Run),
    )


# --- monitoring: fleet gauges, performance, alerts -------------------------------------------


def fleet_metrics(
    *,
    exact_limit: int | None = None,
    stale_beats: float | None = None,
    forget_seconds: int | None = None,
    timeout_ms: int | None = None,
) -> Call[m.FleetMetrics]:
    """The fleet's gauges at scrape time. ``timeout_ms``: the statement_timeout the direct
    transport arms; the function answers from estimates when it fires."""
    # Not read-only for PostgREST: the estimates run EXPLAIN, which a STABLE function may not.
    return Call(
        "fleet_metrics",
        _args(
            exact_limit=(exact_limit, "integer"),
            stale_beats=(stale_beats, "numeric"),
            forget_seconds=(forget_seconds, "integer"),
        ),
        _document("fleet_metrics", "metrics", m.FleetMetrics),
        retry_safe=True,
        statement_timeout_ms=timeout_ms,
    )


def performance_stats(
    period: str, *, max_exact: int | None = None, step_runs: int | None = None
) -> Call[m.PerformanceStats]:
    return Call(
        "performance_stats",
        _args(
            period=(period, "text"),
            max_exact=(max_exact, "integer"),
            step_runs=(step_runs, "integer"),
        ),
        _document("performance_stats", "stats", m.PerformanceStats),
        retry_safe=True,
        read_only=True,
    )


def evaluate_alerts(rules: Mapping[str, Any]) -> Call[list[m.AlertNotice]]:
    """Not retry-safe: a first call that committed unheard has opened the incidents, and a
    repeat would find them open and return no notice for them."""
    return Call(
        "evaluate_alerts", _args(rules=(_object(rules, "rules"), "jsonb")), many(m.AlertNotice)
    )


def list_alerts(status: str | None = None, limit: int = 50) -> Call[list[m.Alert]]:
    return Call(
        "list_alerts",
        _args(status=(status, "text"), max_rows=(limit, "integer")),
        many(m.Alert),
        retry_safe=True,
        read_only=True,
    )
