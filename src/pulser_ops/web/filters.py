"""The runs list's filters, in the URL: parsed from query parameters, written back to them.

A view is a URL, so it can be bookmarked and shared (sidekiq#6497). Bad input becomes a
message on the page, not a 500: each problem is reported and the rest of the filter applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from starlette.datastructures import ImmutableMultiDict, QueryParams

from ..models import LANES, RunCursor, RunFilter, RunStatus

STATUSES = tuple(s.value for s in RunStatus)
FIELDS = ("status", "lane", "template", "worker", "q", "from", "to", "session")


@dataclass(frozen=True)
class ParsedFilter:
    filter: RunFilter
    problems: tuple[str, ...]
    #: The filter as query parameters (without the page cursor), for links and forms.
    params: tuple[tuple[str, str], ...]

    @property
    def query(self) -> str:
        return urlencode(self.params)

    def value(self, name: str) -> str:
        return next((v for k, v in self.params if k == name), "")

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.params if k == name]

    def describe(self) -> str:
        """In words, for confirmations: "status=failed, lane=A"."""
        return ", ".join(f"{k}={v}" for k, v in self.params) or "every run"


def _day(value: str, end: bool) -> datetime:
    """A date (a whole day, in UTC) or a full timestamp."""
    try:
        d = date.fromisoformat(value)
        start = datetime.combine(d, time.min, tzinfo=UTC)
        return start + timedelta(days=1) if end else start
    except ValueError:
        ts = datetime.fromisoformat(value)
        return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def parse(query: QueryParams | ImmutableMultiDict[str, Any]) -> ParsedFilter:
    problems: list[str] = []
    params: list[tuple[str, str]] = []
    data: dict[str, Any] = {}

    def multi(name: str, allowed: tuple[str, ...] | None) -> list[str]:
        out = []
        for raw in query.getlist(name):
            for v in str(raw).split(","):
                v = v.strip()
                if not v:
                    continue
                if allowed is not None and v not in allowed:
                    problems.append(f"{name}: unknown value {v!r}")
                    continue
                if v not in out:
                    out.append(v)
                    params.append((name, v))
        return out

    data["status"] = multi("status", STATUSES)
    data["lanes"] = multi("lane", LANES)
    data["templates"] = multi("template", None)
    for name, key in (("worker", "worker"), ("q", "q")):
        v = str(query.get(name) or "").strip()
        if v:
            data[key] = v[:200]
            params.append((name, v[:200]))
    session = str(query.get("session") or "").strip()
    if session:
        try:
            data["session_id"] = UUID(session)
            params.append(("session", session))
        except ValueError:
            problems.append(f"session: not a uuid ({session!r})")
    for name, key, end in (("from", "created_after", False), ("to", "created_before", True)):
        v = str(query.get(name) or "").strip()
        if v:
            try:
                data[key] = _day(v, end)
                params.append((name, v))
            except ValueError:
                problems.append(f"{name}: not a date ({v!r}); use YYYY-MM-DD")
    return ParsedFilter(RunFilter.model_validate(data), tuple(problems), tuple(params))


def with_cursor(parsed: ParsedFilter, after: str | None) -> RunFilter:
    """The filter plus the keyset cursor ``<created_at ISO>_<id>`` of a "next page" link."""
    if not after:
        return parsed.filter
    at, _, rid = after.rpartition("_")
    try:
        cursor = RunCursor(created_at=datetime.fromisoformat(at), id=UUID(rid))
    except ValueError:
        return parsed.filter
    return parsed.filter.model_copy(update={"before": cursor})


def cursor_of(created_at: datetime, run_id: UUID) -> str:
    return f"{created_at.isoformat()}_{run_id}"
