"""The value every executor returns, and the knobs the worker may tune."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pulser_ops.errors import StepCancelled, StepError
from pulser_ops.steps.context import CancelToken

#: How a finished step ended: the part of ``models.StepStatus`` an executor can report (a
#: step row is also ``running`` while it runs, or ``skipped`` when an earlier one failed).
OutcomeStatus = Literal["succeeded", "failed", "cancelled"]


def utcnow() -> datetime:
    """Timezone-aware now; all step timestamps are UTC like the database's timestamptz."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class StepOutcome:
    """What happened to one step; maps onto ``record_run_step`` / ``complete_run``.

    ``error_class`` is the stable code of a :class:`StepError` (``step_timeout``...) or,
    for an exception escaping a python handler, its class name, so templates can list
    either in ``non_retryable_errors``. ``retryable`` is the executor's opinion; the
    worker combines it with the template's list.
    """

    status: OutcomeStatus
    started_at: datetime
    finished_at: datetime
    exit_code: int | None = None
    error: str | None = None
    error_class: str | None = None
    retryable: bool = True
    result: Any = None
    artifacts: tuple[str, ...] = ()

    @property
    def duration_seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


@dataclass(frozen=True)
class StepOptions:
    """Worker-level settings that are not part of a template.

    ``base_env`` replaces ``os.environ`` as the environment inherited by shell/docker
    steps; the worker should pass a copy with its own secrets (service-role key,
    database URL) removed, since template commands have no business reading them.
    """

    log_tail_bytes: int = 1024 * 1024
    flush_interval_seconds: float = 0.1
    flush_max_lines: int = 100
    max_event_message_bytes: int = 16 * 1024
    base_env: Mapping[str, str] | None = None
    #: Docker engine address to probe when ``DOCKER_HOST`` is unset.
    default_docker_host: str = "unix:///var/run/docker.sock"
    #: Once set, a process step that is already being stopped (cancel/timeout) gets
    #: SIGKILL at once instead of after its ``kill_grace_seconds`` (a worker's second
    #: shutdown signal means "stop now").
    kill_now: CancelToken | None = None


def failed(
    started_at: datetime,
    error: StepError | str,
    *,
    exit_code: int | None = None,
    result: Any = None,
    artifacts: tuple[str, ...] = (),
    error_class: str | None = None,
    retryable: bool | None = None,
) -> StepOutcome:
    """A failed (or, for :class:`StepCancelled`, cancelled) outcome from an error."""
    if isinstance(error, StepError):
        message, code, can_retry = error.message, error.code, error.retryable
    else:
        message, code, can_retry = error, "step_failed", True
    status: OutcomeStatus = "cancelled" if isinstance(error, StepCancelled) else "failed"
    return StepOutcome(
        status=status,
        started_at=started_at,
        finished_at=utcnow(),
        exit_code=exit_code,
        error=message,
        error_class=error_class or code,
        retryable=can_retry if retryable is None else retryable,
        result=result,
        artifacts=artifacts,
    )
