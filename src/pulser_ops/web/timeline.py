"""The run detail's attempts timeline: every step of a run's life, in order.

The lifecycle events come from the control plane (``events.timeline``: claims, retries,
releases, sweeps, cancel requests, re-runs, the end). Two moments write no event and are read
off the run itself: being enqueued (an event per enqueue would cost the hot path an insert)
and a lease that ran out but that the sweeper has not taken yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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


def build(run: Run, events: list[RunEvent]) -> list[Moment]:
    version = f" (template {run.template} v{run.template_version})" if run.template_version else ""
    moments = [
        Moment(run.created_at, "enqueued", f"enqueued on lane {run.lane}{version}"),
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
