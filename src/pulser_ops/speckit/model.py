"""What ``generate_spec_kit`` takes: the params, checked once, for the run type and the CLI.

The run type's ``params_schema`` (supabase/seed.sql) refuses most bad input at enqueue time;
this model is the full check (the JSON Schema subset the control plane supports has no
``oneOf``, so "a string or a story object" is checked here) and gives the same one-line error
whether the params came from a run, ``--params-file`` or flags.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from ..errors import InvalidInput
from .layout import NAME_MAX, Layout, check_name

Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000)]

_GWT = re.compile(
    r"^\s*\**given\**\s+(?P<given>.+?),?\s+\**when\**\s+(?P<when>.+?),?\s+\**then\**\s+(?P<then>.+?)\s*$",
    re.IGNORECASE | re.DOTALL,
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Scenario(_Model):
    given: Line
    when: Line
    then: Line


class Story(_Model):
    """One user story: a title, and whatever of Spec Kit's story fields the caller knows."""

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    description: Text = ""
    priority: int | None = Field(default=None, ge=1, le=9)
    why: Text = ""
    independent_test: Text = ""
    acceptance: list[Scenario] = Field(default_factory=list, max_length=20)
    requirements: list[Line] = Field(default_factory=list, max_length=30)
    success_criteria: list[Line] = Field(default_factory=list, max_length=20)

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, v: Any) -> Any:
        if isinstance(v, str) and re.fullmatch(r"[Pp]\d", v.strip()):
            return int(v.strip()[1:])
        return v

    @field_validator("acceptance", mode="before")
    @classmethod
    def _scenarios(cls, v: Any) -> Any:
        if not isinstance(v, list):
            return v
        out: list[Any] = []
        for item in v:
            if isinstance(item, str):
                m = _GWT.match(item)
                if not m:
                    raise ValueError(f"{item[:60]!r} is not 'Given ..., When ..., Then ...'")
                item = m.groupdict()
            out.append(item)
        return out


class Principle(_Model):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    description: Text = ""


class TechnicalContext(_Model):
    """The plan's Technical Context fields (each left as a TODO when not given)."""

    language_version: Line | None = None
    primary_dependencies: Line | None = None
    storage: Line | None = None
    testing: Line | None = None
    target_platform: Line | None = None
    project_type: Line | None = None
    performance_goals: Line | None = None
    constraints: Line | None = None
    scale_scope: Line | None = None


class KitParams(_Model):
    name: str
    title: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None
    description: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20000)
    ]
    features: list[Story] = Field(default_factory=list, max_length=50)
    principles: list[Principle] = Field(default_factory=list, max_length=20)
    technical_context: TechnicalContext = Field(default_factory=TechnicalContext)
    layout: Layout = "plan"
    date: dt.date | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        try:
            return check_name(v)
        except InvalidInput as e:
            raise ValueError(e.message.split(": ", 1)[1]) from None

    @field_validator("features", mode="before")
    @classmethod
    def _features(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"title": x} if isinstance(x, str) else x for x in v]
        return v

    @field_validator("principles", mode="before")
    @classmethod
    def _principles(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [_principle(x) if isinstance(x, str) else x for x in v]
        return v

    @property
    def display_title(self) -> str:
        if self.title:
            return self.title
        words = re.split(r"[-_.]+", self.name)
        return " ".join(w[:1].upper() + w[1:] for w in words if w)


def _principle(text: str) -> dict[str, str]:
    name, sep, rest = text.partition(":")
    return {"name": name, "description": rest} if sep and name.strip() else {"name": text}


def parse_params(raw: Any, draft: Any = None) -> KitParams:
    """Check params; ``draft`` (e.g. an AI model's output) fills only what params leave out."""
    if not isinstance(raw, dict):
        raise InvalidInput("params: expected a JSON object")
    merged = dict(raw)
    if draft is not None:
        if isinstance(draft, dict) and isinstance(draft.get("structuredContent"), dict):
            draft = draft["structuredContent"]  # an MCP tool result
        if not isinstance(draft, dict):
            raise InvalidInput("draft: expected a JSON object with params fields")
        for key, value in draft.items():
            fillable = key in KitParams.model_fields and key not in ("name", "layout")
            if fillable and merged.get(key) in (None, "", [], {}):
                merged[key] = value
    try:
        return KitParams.model_validate(merged)
    except ValidationError as e:
        first = e.errors()[0]
        where = _where(first.get("loc", ()))
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        raise InvalidInput(f"{where}: {message}", detail=where) from None


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "params"


__all__ = ["NAME_MAX", "KitParams", "Principle", "Scenario", "Story", "parse_params"]
