"""Typed rows of the control plane, identical whichever transport fetched them.

psycopg hands back ``datetime``/``UUID`` objects and PostgREST hands back ISO strings; pydantic
turns both into the same models, and every model round-trips through JSON
(``Run.model_validate_json(run.model_dump_json()) == run``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from .values import Json, JsonObject, Text

LaneId = Literal["A", "B", "C", "D"]
LANES: tuple[LaneId, ...] = ("A", "B", "C", "D")


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


TERMINAL_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})


def _status_text(value: Any) -> Any:
    """Only text can name a status. Anything else is refused by its type here, because the enum
    would put its repr in the error, and a list nested 10,000 deep has none: the caller got a
    RecursionError instead of ``InvalidInput``."""
    if isinstance(value, str):
        return value
    raise ValueError(f"not a run status ({type(value).__name__})")


#: A status that callers send (``RunStatus`` is what rows carry).
Status = Annotated[RunStatus, BeforeValidator(_status_text)]


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class _Request(BaseModel):
    """What callers send: unknown keys are refused (a misspelt ``priorty`` is an error, not a
    silent default), and text and JSON are held to what the database can store (``values``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Run(_Row):
    id: UUID
    template: str
    lane: LaneId
    status: RunStatus
    priority: int = 0
    attempt: int = 0
    max_attempts: int
    lease_seconds: int
    params: dict[str, Any] = Field(default_factory=dict)
    session_id: UUID | None = None
    owner_id: UUID | None = None
    idempotency_key: str | None = None
    available_at: datetime
    worker_id: str | None = None
    claimed_at: datetime | None = None
    heartbeat_at: datetime | None = None
    lease_expires_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    cancel_reason: str | None = None
    result: Any = None
    error: str | None = None
    error_class: str | None = None
    sweep_count: int = 0
    version: int = 1
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    #: The template version this run executes (its steps, timeout and retry policy), fixed when
    #: it was enqueued; None only for runs that finished before templates had versions.
    template_version: int | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def cancel_requested(self) -> bool:
        return self.cancel_requested_at is not None


class RunRequest(_Request):
    """One run to enqueue (the batch form of ``client.runs.create``)."""

    template: Text
    params: JsonObject = Field(default_factory=dict)
    lane: LaneId | None = None
    priority: int = 0
    run_after: datetime | None = None
    idempotency_key: Text | None = None
    session_id: UUID | None = None
    max_attempts: int | None = None


StepKind = Literal["shell", "http", "python", "mcp", "docker"]
StepStatus = Literal["running", "succeeded", "failed", "cancelled", "skipped"]


class RunStep(_Row):
    run_id: UUID
    attempt: int
    idx: int
    name: str
    kind: StepKind
    status: StepStatus
    started_at: datetime
    finished_at: datetime | None = None
    exit_code: int | None = None
    error: str | None = None
    output: Any = None


EventLevel = Literal["debug", "info", "warn", "error"]


class RunEvent(_Row):
    run_id: UUID
    seq: int
    at: datetime
    kind: str
    level: EventLevel = "info"
    message: str = ""
    data: Any = None
    attempt: int | None = None
    worker_id: str | None = None


class EventIn(_Request):
    """An event to append; ``seq`` is assigned by the control plane."""

    run_id: UUID
    kind: Text
    message: Text = ""
    level: EventLevel = "info"
    data: Json = None
    attempt: int | None = None
    worker_id: Text | None = None


class Artifact(_Row):
    id: UUID
    run_id: UUID
    attempt: int | None = None
    name: str
    kind: str
    content_type: str
    size_bytes: int
    inline_text: str | None = None
    storage_bucket: str | None = None
    storage_path: str | None = None
    sha256: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime

    @property
    def is_inline(self) -> bool:
        return self.inline_text is not None


class Template(_Row):
    name: str
    description: str = ""
    params_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    steps: list[dict[str, Any]] = Field(default_factory=list)
    default_lane: LaneId = "A"
    max_attempts: int = 3
    retry_backoff_seconds: float = 5
    retry_backoff_max_seconds: float = 600
    retry_jitter: float = 0.2
    non_retryable_errors: list[str] = Field(default_factory=list)
    lease_seconds: int = 60
    timeout_seconds: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    #: 1, then one more for each change of the definition (read-only: the database sets it)
    version: int = 1


#: Fields of a template the database sets (never sent to ``upsert``).
TEMPLATE_READ_ONLY = frozenset({"created_at", "updated_at", "version"})


class Schedule(_Row):
    """A recurring run: a run of ``template`` with ``params`` at each time ``cron`` names, on
    the wall clock of ``timezone``. The sweeper's pass enqueues it when due (``enqueue_due``)."""

    name: str
    template: str
    #: five fields (minute hour day-of-month month day-of-week) or @hourly/@daily/@weekly/...
    cron: str
    timezone: str = "UTC"
    params: dict[str, Any] = Field(default_factory=dict)
    #: None: the template's default lane
    lane: LaneId | None = None
    priority: int = 0
    enabled: bool = True
    description: str = ""
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    last_run_id: UUID | None = None
    #: why the last due time enqueued nothing (the params no longer fit the template, ...)
    last_error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


#: Fields of a schedule the database sets (never sent to ``upsert``).
SCHEDULE_READ_ONLY = frozenset(
    {"next_run_at", "last_run_at", "last_run_id", "last_error", "created_at", "updated_at"}
)


class ScheduleFire(_Row):
    """One due time of a schedule, fired: the run it enqueued, or why none was."""

    schedule: str
    due_at: datetime
    run_id: UUID | None = None
    error: str | None = None


class ScheduleTime(_Row):
    """A time a cron expression names, and the same as the zone's wall clock ("Mon 2026-12-07
    09:00")."""

    due_at: datetime
    local_time: str


class TemplateVersion(_Row):
    """One recorded definition of a template: every settable field but its name."""

    template: str
    version: int
    definition: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime


class TemplateSummary(_Row):
    """A template as the Templates tab lists it: with when a run of it was last enqueued
    (among the runs the caller can see)."""

    name: str
    description: str = ""
    default_lane: LaneId = "A"
    version: int = 1
    steps: list[Any] = Field(default_factory=list)
    max_attempts: int = 3
    lease_seconds: int = 60
    timeout_seconds: int | None = None
    updated_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def step_kinds(self) -> list[str]:
        return [str(s.get("kind", "?")) if isinstance(s, dict) else "?" for s in self.steps]


class FieldProblem(_Row):
    """One problem of a template or of params, named by its field (``""``: the whole)."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class Session(_Row):
    id: UUID
    owner_id: UUID | None = None
    title: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime


class SessionSummary(Session):
    """A session as the Chat tab lists it."""

    messages: int = 0
    runs: int = 0
    active_runs: int = 0
    last_activity_at: datetime


MessageKind = Literal["command", "reply", "error", "note"]


class SessionMessage(_Row):
    """One message of a session's conversation: what an operator typed (``command``) and
    what the room answered (``reply``, ``error``); ``run_id``: the run it is about."""

    id: int
    session_id: UUID
    at: datetime
    author_id: UUID | None = None
    author: str = ""
    kind: MessageKind
    body: str = ""
    run_id: UUID | None = None
    data: dict[str, Any] | None = None


class MessageIn(_Request):
    """A message to append to a session."""

    kind: MessageKind
    body: Text
    run_id: UUID | None = None
    data: JsonObject | None = None


class ArtifactRef(_Row):
    """An artifact named on a run card (no content)."""

    name: str
    attempt: int | None = None
    kind: str = "text"
    content_type: str = ""
    size_bytes: int = 0


class SpecDoc(_Row):
    """A document of a spec kit; ``run_id``/``path`` are set when a run generated it."""

    id: UUID
    session_id: UUID | None = None
    owner_id: UUID | None = None
    run_id: UUID | None = None
    path: str | None = None
    kind: str
    title: str = ""
    content: str = ""
    created_at: datetime
    updated_at: datetime


class SpecDocIn(_Request):
    """A document a worker saves for its run (``put_spec_docs``); session and owner come
    from the run."""

    path: Text
    kind: Text
    title: Text = ""
    content: Text


class Lane(_Row):
    id: LaneId
    paused: bool = False
    max_running: int | None = None
    description: str = ""
    updated_at: datetime


class LaneStats(_Row):
    lane: LaneId
    paused: bool
    max_running: int | None = None
    status: Literal["queued", "running"]
    runs: int
    oldest_age_seconds: float | None = None


WorkerStatus = Literal["active", "draining", "stopped"]


class WorkerInfo(_Row):
    """A row of the worker registry (not the process: that is ``pulser_ops.worker.Worker``)."""

    id: str
    host: str = ""
    pid: int | None = None
    lanes: list[LaneId] = Field(default_factory=list)
    version: str = ""
    concurrency: int = 1
    status: WorkerStatus = "active"
    started_at: datetime
    last_seen_at: datetime
    metadata: dict[str, Any] = Field(default_factory=dict)


class WorkerHealth(WorkerInfo):
    """A worker with what the ``worker_health`` view adds: how long since it was seen, whether
    that is too long (``stale``: over 60 s for a worker that has not stopped), runs it holds."""

    seen_seconds_ago: float
    stale: bool
    running: int


class StuckRun(_Row):
    id: UUID
    template: str
    lane: LaneId
    status: RunStatus
    attempt: int
    max_attempts: int
    sweep_count: int
    worker_id: str | None = None
    lease_expires_at: datetime | None = None
    since_heartbeat_seconds: float | None = None


class Heartbeat(_Row):
    run_id: UUID
    attempt: int
    cancel_requested: bool
    lease_expires_at: datetime


class HeartbeatBatchItem(_Row):
    run_id: UUID
    attempt: int
    ok: bool
    cancel_requested: bool
    lease_expires_at: datetime | None = None


class StepRecord(_Request):
    """A ``run_steps`` row to write with a completion (what ``runs.record_step`` takes).

    ``started_at``: when the step started, for a row that is first written with the
    completion (None: the time of the write). A row that already exists keeps its own."""

    idx: int
    name: Text
    kind: Text
    status: Text
    exit_code: int | None = None
    error: Text | None = None
    output: Json = None
    started_at: datetime | None = None


class CompletionEvent(_Request):
    """An event that goes with a completion: attempt and worker are the completion's."""

    kind: Text
    message: Text = ""
    level: EventLevel = "info"
    data: Json = None


class Completion(_Request):
    """One finished run, for ``client.runs.complete_many`` (what ``runs.complete`` takes).

    ``steps``: step rows written in the same transaction, only if the completion is recorded
    (a worker sends its last step's final row here instead of a separate call).
    ``events``: the run's events not yet appended, written just before its terminal event and
    only if the completion is recorded now (a worker sends a run's last log lines here instead
    of appending them first: one call and one transaction less per run)."""

    run_id: UUID
    attempt: int
    status: Text
    result: Json = None
    error: Text | None = None
    error_class: Text | None = None
    retryable: bool = True
    steps: list[StepRecord] | None = None
    events: list[CompletionEvent] | None = None


class CompleteBatchItem(_Row):
    """What became of one completion of a batch.

    ``ok``: the completion is recorded (now, or by an identical earlier call). ``status`` is the
    run's status after the call: ``queued`` when a failure was scheduled for retry at
    ``retry_at``. When not ok, ``status`` is what the run is now (None: no such run) and
    ``detail`` says why, as ``LeaseLost`` would for a single ``complete``.
    """

    run_id: UUID
    attempt: int
    ok: bool
    status: RunStatus | None = None
    retry_at: datetime | None = None
    detail: str | None = None


class SweepResult(_Row):
    run_id: UUID
    action: Literal["requeued", "failed", "cancelled"]
    attempt: int
    worker_id: str | None = None
    stuck_for_seconds: float | None = None
    lane: LaneId | None = None


class PruneResult(_Row):
    run_id: UUID
    storage_paths: list[str] = Field(default_factory=list)


ChangeTable = Literal["runs", "run_events", "run_steps", "artifacts", "workers"]


class Change(_Row):
    """One live update. ``kind`` is INSERT/UPDATE/DELETE, or SNAPSHOT for catch-up rows that were
    fetched after a (re)connect rather than pushed; consumers treat both the same.

    A DELETE of a run (``runs.delete``, ``prune``) carries only ``run_id``: the row is gone, and
    Realtime sends nothing but the primary key of a deleted row."""

    table: ChangeTable
    kind: Literal["INSERT", "UPDATE", "DELETE", "SNAPSHOT"]
    run: Run | None = None
    run_id: UUID | None = None
    event: RunEvent | None = None
    step: RunStep | None = None
    artifact: Artifact | None = None
    worker: WorkerInfo | None = None


# --- the control room: run filters, the board, counts, bulk actions ---------------------------
# One filter model serves the runs list, its count, its export and its bulk actions, so "cancel
# 412 runs matching ..." acts on exactly the runs the list showed.


class RunCursor(_Request):
    """Keyset position: the last row of a page (newest first)."""

    created_at: datetime
    id: UUID


class RunFilter(_Request):
    """Which runs: every field narrows (AND); empty lists and None mean "any"."""

    status: tuple[Status, ...] = ()
    lanes: tuple[LaneId, ...] = ()
    templates: tuple[Text, ...] = ()
    worker: Text | None = None
    session_id: UUID | None = None
    #: text in params, error or cancel reason (the newest 100,000 runs), or a run id
    q: Text | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    before: RunCursor | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``filter`` argument of the SQL functions: only what is set."""
        out = self.model_dump(mode="json", exclude_none=True)
        return {k: v for k, v in out.items() if v not in ((), [], "")}

    @property
    def is_empty(self) -> bool:
        return not self.model_copy(update={"before": None}).to_json()


class LastEvent(_Row):
    seq: int
    at: datetime
    level: str = "info"
    kind: str = ""
    message: str = ""


class RunningCard(_Row):
    """A running run as the board shows it."""

    id: UUID
    template: str
    lane: LaneId
    attempt: int
    max_attempts: int
    worker_id: str | None = None
    claimed_at: datetime | None = None
    heartbeat_at: datetime | None = None
    lease_expires_at: datetime | None = None
    lease_seconds: int
    cancel_requested_at: datetime | None = None
    created_at: datetime
    priority: int = 0
    last_event: LastEvent | None = None


class SessionRun(_Row):
    """A run of a session as its live card: the run, its last event and its artifacts."""

    run: Run
    last_event: LastEvent | None = None
    artifacts: list[ArtifactRef] = Field(default_factory=list)


class LaneBoard(_Row):
    lane: LaneId
    paused: bool = False
    max_running: int | None = None
    description: str = ""
    queued: int = 0
    #: queued with a ``run_after`` in the future (retry backoff, scheduled)
    scheduled: int = 0
    running: int = 0
    oldest_queued_age_seconds: float | None = None
    succeeded_1h: int = 0
    failed_1h: int = 0
    cancelled_1h: int = 0
    #: runs finished per minute over the last hour, oldest minute first (60 values)
    throughput: list[int] = Field(default_factory=list)
    #: of those, failed
    failures: list[int] = Field(default_factory=list)


class StuckSummary(_Row):
    """Running runs whose lease expired and that the sweeper has not taken yet."""

    count: int = 0
    ids: list[UUID] = Field(default_factory=list)


class BoardSnapshot(_Row):
    now: datetime
    lanes: list[LaneBoard]
    running: list[RunningCard]
    running_total: int = 0
    stuck: StuckSummary = Field(default_factory=StuckSummary)


class RunCount(_Row):
    """``exact`` False: more than the cap matched and ``runs`` is the planner's estimate."""

    runs: int
    exact: bool


class SessionDeleted(_Row):
    """What ``sessions.delete`` did: its runs stay, detached (``runs_detached``); its spec docs
    went with it."""

    session_id: UUID
    runs_detached: int
    spec_docs_deleted: int


class BulkResult(_Row):
    """``matched``: runs the action applies to (counted up to 100,000); ``capped``: more than
    the cap matched, so only the newest ``max_runs`` were acted on; ``touched``: the runs
    cancelled, or the new runs of a re-run (empty for a dry run)."""

    matched: int
    affected: int
    capped: bool
    touched: list[UUID] = Field(default_factory=list)


# --- monitoring (fleet_metrics, performance_stats, alerts) ---------------------------------------


class LaneQueue(_Row):
    """A lane's queue at scrape time; ``exact`` False: more were queued than the cap and
    ``queued`` (and the template split) are estimates."""

    lane: LaneId
    paused: bool = False
    max_running: int | None = None
    queued: int = 0
    exact: bool = True
    oldest_ready_at: datetime | None = None
    oldest_age_seconds: float | None = None
    oldest_run_id: UUID | None = None
    #: queued runs per template ("" when only the lane's total is known)
    templates: dict[str, int] = Field(default_factory=dict)


class RunningCount(_Row):
    lane: LaneId
    template: str = ""
    runs: int = 0
    #: running with the lease expired (None: not counted, the scrape ran out of time)
    stuck: int | None = None


class FinishedCount(_Row):
    lane: LaneId
    template: str
    status: Literal["succeeded", "failed", "cancelled"]
    runs: int = 0


class FleetWorker(_Row):
    id: str
    host: str = ""
    lanes: list[LaneId] = Field(default_factory=list)
    concurrency: int = 1
    status: str = "active"
    #: runs it holds (None: not counted, the scrape ran out of time)
    running: int | None = None
    last_seen_at: datetime
    heartbeat_seconds: float = 10.0
    stale: bool = False


class FleetMetrics(_Row):
    """The fleet's gauges at one moment (``fleet_metrics``). ``exact``: the queue counts are
    exact; ``finished_exact``: so are the finished counts (else a block sample of
    ``finished_sample_percent`` % of the table, scaled up)."""

    taken_at: datetime
    exact: bool = True
    finished_exact: bool = True
    finished_sample_percent: float | None = None
    lanes: list[LaneQueue] = Field(default_factory=list)
    running: list[RunningCount] = Field(default_factory=list)
    finished: list[FinishedCount] = Field(default_factory=list)
    workers: list[FleetWorker] = Field(default_factory=list)


class Percentiles(_Row):
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None


class TemplatePerformance(_Row):
    template: str = ""
    runs: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    #: finished runs per hour over the period
    per_hour: float = 0.0
    #: seconds from available to claimed (the last attempt's)
    wait: Percentiles = Field(default_factory=Percentiles)
    #: seconds from claimed to finished
    duration: Percentiles = Field(default_factory=Percentiles)
    #: finished runs per bucket, oldest first; ``failures``: of those, failed
    series: list[int] = Field(default_factory=list)
    failures: list[int] = Field(default_factory=list)


class StepKindPerformance(_Row):
    kind: str
    steps: int = 0
    failed: int = 0
    duration: Percentiles = Field(default_factory=Percentiles)


PerformancePeriod = Literal["hour", "day", "week"]
PERIODS: tuple[PerformancePeriod, ...] = ("hour", "day", "week")


class PerformanceStats(_Row):
    """``performance_stats`` for one period. ``exact`` False: more than ``max_exact`` runs
    finished, and the numbers come from a block sample of ``sample_percent`` % of the runs
    table (``runs_read`` runs of the period), its counts scaled up. ``step_runs``: how many
    runs the step percentiles come from."""

    period: PerformancePeriod
    since: datetime
    until: datetime
    bucket_seconds: int
    buckets: int
    exact: bool = True
    sample_percent: float = 100.0
    runs_read: int = 0
    templates: list[TemplatePerformance] = Field(default_factory=list)
    total: TemplatePerformance = Field(default_factory=TemplatePerformance)
    step_runs: int = 0
    steps: list[StepKindPerformance] = Field(default_factory=list)


AlertSeverity = Literal["info", "warning", "critical"]


class Alert(_Row):
    """An alert incident: firing while its rule's condition holds for its subject (a lane, a
    worker, a template), then resolved."""

    id: UUID
    rule: str
    subject: str = ""
    severity: AlertSeverity = "warning"
    status: Literal["firing", "resolved"]
    summary: str = ""
    details: dict[str, Any] = Field(default_factory=dict)
    run_ids: list[UUID] = Field(default_factory=list)
    started_at: datetime
    last_seen_at: datetime
    notified_at: datetime | None = None
    notifications: int = 0
    resolved_at: datetime | None = None


class AlertNotice(_Row):
    """What to tell people about an incident: ``firing`` (new), ``reminder`` (still firing)
    or ``resolved``."""

    alert_id: UUID
    notice: Literal["firing", "reminder", "resolved"]
    rule: str
    subject: str = ""
    severity: AlertSeverity = "warning"
    summary: str = ""
    details: dict[str, Any] = Field(default_factory=dict)
    run_ids: list[UUID] = Field(default_factory=list)
    started_at: datetime
    resolved_at: datetime | None = None
    notifications: int = 0
