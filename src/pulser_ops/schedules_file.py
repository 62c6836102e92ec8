"""Schedule files: the YAML (or JSON) that ``pulser-ops schedules apply`` reads and ``schedules ls
--format yaml`` writes. One schedule or a list of them, each with the fields of
``models.Schedule``; the read-only ones (``next_run_at``, ``last_error``, ...) are dropped, so
``ls --format yaml`` or ``--format json`` output applies as it is.

Only the file's shape is checked here. Every field of every schedule is checked by the control
plane, all in one transaction (``upsert_schedules``), so a bad schedule anywhere in the file
writes none of them and the error names it (``schedules[1] (nightly): ...``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from .errors import InvalidInput
from .models import SCHEDULE_READ_ONLY, Schedule


def schedules_in(doc: Any, source: object) -> list[dict[str, Any]]:
    """The schedules of a parsed document; raises ``InvalidInput`` naming the first that is not
    an object."""
    items = doc if isinstance(doc, list) else [doc]
    if doc is None or not items:
        raise InvalidInput(f"schedule file {source}: no schedules in it")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidInput(f"schedule file {source}, schedule {i + 1}: expected an object")
        out.append({k: v for k, v in item.items() if k not in SCHEDULE_READ_ONLY})
    return out


def dump(schedules: Iterable[Schedule]) -> str:
    """YAML that ``schedules_in`` (and ``pulser-ops schedules apply``) reads back to the same
    schedules: always a list, so a script reads one shape however many there are."""
    items = [s.model_dump(mode="json", exclude=set(SCHEDULE_READ_ONLY)) for s in schedules]
    return yaml.safe_dump(items, sort_keys=False, allow_unicode=True, width=100)
