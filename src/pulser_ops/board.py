"""Rows of the Ops Control Room's reads and bulk actions (``board_snapshot``, ``search_runs``,
``count_runs``, ``bulk_cancel_runs``, ``bulk_rerun_runs``), and the run filter they share.

One filter model serves the runs list, its count, its export and its bulk actions, so "cancel
412 runs matching …" acts on exactly the runs the list showed. Like every model, these validate
the rows of either transport the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from .models import LaneId, RunStatus


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class RunCursor(_Row):
    """Keyset position: the last row of a page (newest first)."""

    created_at: datetime
    id: UUID


class RunFilter(_Row):
    """Which runs: every field narrows (AND); empty lists and None mean "any"."""

    status: tuple[RunStatus, ...] = ()
    lanes: tuple[LaneId, ...] = ()
    templates: tuple[str, ...] = ()
    worker: str | None = None
    session_id: UUID | None = None
    #: text in params, error or cancel reason (the newest 100,000 runs), or a run id
    q: str | None = None
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


class BulkResult(_Row):
    """``matched``: runs the action applies to (counted up to 100,000); ``capped``: more than
    the cap matched, so only the newest ``max_runs`` were acted on; ``touched``: the runs
    cancelled, or the new runs of a re-run (empty for a dry run)."""

    matched: int
    affected: int
    capped: bool
    touched: list[UUID] = Field(default_factory=list)
