"""What callers pass, turned into what ``calls`` takes: shared by both client surfaces.

Nothing here does I/O, so it is written once for ``Client`` and ``AsyncClient`` alike and a bad
input fails the same way (``InvalidInput``, naming the item) on either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from .. import models as m
from ..errors import InvalidInput

RunRequestLike = m.RunRequest | Mapping[str, Any]
EventLike = m.EventIn | Mapping[str, Any]
CompletionLike = m.Completion | Mapping[str, Any]
SpecDocLike = m.SpecDocIn | Mapping[str, Any]
_In = TypeVar("_In", m.RunRequest, m.EventIn, m.Completion, m.SpecDocIn)


def models_of(model: type[_In], items: Iterable[_In | Mapping[str, Any]], name: str) -> list[_In]:
    """Batch inputs as models; a bad item is the caller's mistake, named by its position."""
    out = []
    for i, item in enumerate(items):
        try:
            out.append(item if isinstance(item, model) else model.model_validate(item))
        except ValueError as e:
            raise InvalidInput(f"{name}[{i}]: {e}") from None
    return out


def requests(items: Iterable[RunRequestLike]) -> list[m.RunRequest]:
    return models_of(m.RunRequest, items, "runs")


def events(items: Iterable[EventLike]) -> list[m.EventIn]:
    return models_of(m.EventIn, items, "events")


def completions(items: Iterable[CompletionLike]) -> list[m.Completion]:
    return models_of(m.Completion, items, "completions")


def spec_docs(items: Iterable[SpecDocLike]) -> list[m.SpecDocIn]:
    return models_of(m.SpecDocIn, items, "docs")


def one_request(
    template: str,
    params: Mapping[str, Any] | None,
    lane: str | None,
    priority: int,
    run_after: datetime | None,
    idempotency_key: str | None,
    session_id: UUID | str | None,
    max_attempts: int | None,
) -> m.RunRequest:
    return requests(
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


def settled_outcomes(done: Iterable[m.CompleteBatchItem]) -> dict[str, str]:
    """The runs a batch completion did not settle as asked: queued again for a retry, or
    refused (the lease moved on), by run id (for the ``settle`` spans)."""
    return {
        str(d.run_id): "retried" if d.ok else "lease_lost"
        for d in done
        if not d.ok or d.status == m.RunStatus.QUEUED
    }


def storage_paths(gone: Iterable[m.PruneResult]) -> list[str]:
    """The Storage files of deleted runs: SQL cannot delete them, the client must."""
    return [p for g in gone for p in g.storage_paths]


def template_json(template: m.Template | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(template, m.Template):
        return template.model_dump(mode="json", exclude={"created_at", "updated_at"})
    if not isinstance(template, Mapping):
        raise InvalidInput(
            f"template: expected a Template or a mapping, not {type(template).__name__}"
        )
    return dict(template)
