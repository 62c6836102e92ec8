"""The run detail's attempts timeline: every step of a run's life, in order.

The lifecycle events come from the control plane (``events.timeline``: claims, retries,
releases, sweeps, cancel requests, re-runs, the end). Two moments write no event and are read
off the run itself: being enqueued (an event per enqueue would cost the hot path an insert)
and a lease that ran out but that the sweeper has not taken yet. A run a schedule enqueued says
which schedule and which due time, read off its idempotency key (``schedule:<name>:<due UTC>``,
as ``enqueue_due_schedules`` writes it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from ..models import Run, RunEvent
from . import format as fmt


@dataclass(frozen=True)
class Moment:
    at: datetime
    kind: str
    message: str
    level: str = "info"
    attempt: int | None = None
    worker_id: str | None = None
    #: the schedule that enqueued the run (its message starts "enqueued by schedule <name>")
    schedule: str | None = None


#: The key ``enqueue_due_schedules`` gives a run: the schedule's name and the due time in UTC.
SCHEDULE_KEY = re.compile(
    r"schedule:([a-z0-9][a-z0-9_.-]{0,62}):(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"
)


def scheduled_by(run: Run) -> tuple[str, datetime] | None:
    """The schedule that enqueued ``run`` and the due time it was enqueued for, if a schedule
    did (only a key of exactly that form: a key a caller chose otherwise is theirs)."""
    m = SCHEDULE_KEY.fullmatch(run.idempotency_key or "")
    if m is None:
        return None
    try:
        due = datetime.strptime(m.group(2), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:  # "2026-13-40T...": the form, but no time
        return None
    return m.group(1), due


def _enqueued(run: Run) -> Moment:
    version = f" (template {run.template} v{run.template_version})" if run.template_version else ""
    where = f"on lane {run.lane}{version}"
    by = scheduled_by(run)
    if by is None:
        return Moment(run.created_at, "enqueued", f"enqueued {where}")
    name, due = by
    same_day = due.date() == run.created_at.astimezone(UTC).date()
    when = due.strftime("%H:%M UTC" if same_day else "%Y-%m-%d %H:%M UTC")
    return Moment(
        run.created_at, "enqueued", f"enqueued by schedule {name} (due {when}) {where}",
        schedule=name,
    )  # fmt: skip


def build(run: Run, events: list[RunEvent]) -> list[Moment]:
    moments = [
        _enqueued(run),
        *(Moment(e.at, e.kind, e.message, e.level, e.attempt, e.worker_id) for e in events),
    ]
    now = fmt.now()
    if run.status.value == "running" and run.lease_expires_at and run.lease_expires_at < now:
        moments.append(
            Moment(
                run.lease_expires_at,
                "lease_expired",
                f"lease of worker {run.worker_id} expired; the sweeper has not taken it yet",
                "warn",
                run.attempt,
                run.worker_id,
            )
        )
    if run.is_terminal and run.finished_at and run.status.value not in {e.kind for e in events}:
        moments.append(
            Moment(run.finished_at, run.status.value, f"{run.status.value}", "info", run.attempt)
        )
    if run.status.value == "queued" and run.available_at > now:
        again = "to be claimed again from here" if run.attempt else "not to be claimed before this"
        moments.append(Moment(run.available_at, "waiting", again))
    return sorted(moments, key=lambda m: m.at)
