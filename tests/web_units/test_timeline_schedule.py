"""The run timeline's enqueued moment for a run a schedule enqueued: read off the idempotency
key ``enqueue_due_schedules`` writes (``schedule:<name>:<due UTC>``), and only a key of exactly
that form."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from pulser_ops.models import Run
from pulser_ops.web.timeline import build, scheduled_by


def _run(key: str | None, created: datetime) -> Run:
    # running without a lease: the timeline adds no moment of its own (waiting, expired)
    data: dict[str, Any] = {"id": uuid4(), "template": "hello", "lane": "B", "status": "running",
                            "max_attempts": 3, "lease_seconds": 30, "created_at": created,
                            "updated_at": created, "available_at": created,
                            "idempotency_key": key, "template_version": 3}  # fmt: skip
    return Run.model_validate(data)


NOON = datetime(2026, 12, 1, 12, 0, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("schedule:nightly:2026-12-01T01:30:00Z", ("nightly", NOON.replace(hour=1, minute=30, second=0))),
        ("schedule:a.b_c-9:2026-12-01T12:00:00Z", ("a.b_c-9", NOON.replace(second=0))),
        ("schedule:nightly:2026-13-01T01:30:00Z", None),  # the form, but no such time
        ("schedule:nightly:2026-12-01T01:30:00", None),
        ("schedule:nightly:2026-12-01T01:30:00Z ", None),
        ("schedule:Nightly:2026-12-01T01:30:00Z", None),  # no schedule has that name
        ("schedule:night:ly:2026-12-01T01:30:00Z", None),
        ("xschedule:nightly:2026-12-01T01:30:00Z", None),
        ("schedule:nightly:soon", None),
        ("order-42", None),
        (None, None),
    ],
)
def test_only_the_exact_key_of_a_schedule_names_one(
    key: str | None, expected: tuple[str, datetime] | None
) -> None:
    assert scheduled_by(_run(key, NOON)) == expected


def test_the_enqueued_moment_says_which_schedule_and_due_time() -> None:
    [same] = build(_run("schedule:nightly:2026-12-01T11:59:00Z", NOON), [])
    assert same.message == "enqueued by schedule nightly (due 11:59 UTC) on lane B (template hello v3)"
    assert same.schedule == "nightly" and same.kind == "enqueued"
    # a catch-up after an outage enqueues the day after its due time: the date is said too
    [late] = build(_run("schedule:nightly:2026-11-30T01:30:00Z", NOON), [])
    assert late.message.startswith("enqueued by schedule nightly (due 2026-11-30 01:30 UTC)")
    [plain] = build(_run("order-42", NOON), [])
    assert plain.message == "enqueued on lane B (template hello v3)" and plain.schedule is None
