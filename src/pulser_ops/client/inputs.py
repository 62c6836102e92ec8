"""What callers pass, checked and turned into what ``calls`` takes: shared by both client surfaces.

Every public method of the client is wrapped in ``checked``: pydantic validates its arguments
against their annotations before the method runs, so a wrong type, a None where a value is
needed, text the database cannot hold (NUL, a lone surrogate) or a value that cannot become JSON
raises ``InvalidInput`` naming the argument, and nothing is sent. (Left to the transports, such
values failed as a ``TransportError`` that retry-safe calls sent four times, or as a raw
``TypeError``/``RecursionError``/``UnicodeEncodeError``.)

The annotations carry the rules, so a method states them once, in its signature: ``Text``
(no NUL, no lone surrogate), ``Json``/``JsonObject`` (plain JSON: see ``pulser_ops.values``),
``Id`` (a UUID), ``Lane``, ``LaneList`` and ``Statuses`` (known values only; a list, or a
comma-separated string), ``Items[...]`` (any iterable, taken as a list). For mypy they read as
what callers may pass (``UUID | str``, ``Iterable[...]``). The request models (``RunRequest``,
``EventIn``, ``Completion``, ``RunFilter``) use the same types and refuse unknown keys, so a
mapping in a batch is held to the same rules.

Nothing here does I/O, so it is written once for ``Client`` and ``AsyncClient`` alike.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic import validate_call as _validate_call

from .. import models as m
from ..errors import InvalidInput
from ..values import Content, Json, JsonObject, Text

__all__ = ["Content", "Json", "JsonObject", "Text"]  # the value types, for the client source


def _as_uuid(value: Any) -> UUID:
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
    # The value is named by its type unless it is text: the repr of what a caller passed can
    # be anything (a list nested 10,000 deep has none).
    got = repr(value[:60]) if isinstance(value, str) else type(value).__name__
    raise ValueError(f"not a uuid ({got})")


def _comma_list(value: Any) -> Any:
    """``"A,B"`` (the CLI's form) as ``["A", "B"]``; anything else as it is."""
    if isinstance(value, str):
        return [x.strip() for x in value.split(",") if x.strip()]
    return value


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


# --- the types of the client's parameters -----------------------------------------------------

Id = Annotated[UUID | str, BeforeValidator(_as_uuid)]

if TYPE_CHECKING:
    #: Any iterable (a list, tuple, set, generator, ...).
    Items = Iterable
    Lane = str
    LaneList = Iterable[str] | str
    Statuses = Iterable[str] | str
    RunRequestLike = m.RunRequest | Mapping[str, Any]
    EventLike = m.EventIn | Mapping[str, Any]
    CompletionLike = m.Completion | Mapping[str, Any]
    SpecDocLike = m.SpecDocIn | Mapping[str, Any]
    MessageLike = m.MessageIn | Mapping[str, Any]
    FilterLike = m.RunFilter | Mapping[str, Any]
    TemplateLike = m.Template | Mapping[str, Any]
    ScheduleLike = m.Schedule | Mapping[str, Any]
else:
    # A list for pydantic: any iterable but a string or a mapping, validated at once (an
    # ``Iterable`` would be validated item by item as the method reads it, mid-call).
    Items = list
    Lane = m.LaneId
    LaneList = Annotated[list[m.LaneId], BeforeValidator(_comma_list)]
    Statuses = Annotated[list[m.Status], BeforeValidator(_one_or_many)]
    RunRequestLike = m.RunRequest
    EventLike = m.EventIn
    CompletionLike = m.Completion
    SpecDocLike = m.SpecDocIn
    MessageLike = m.MessageIn
    FilterLike = m.RunFilter
    # A mapping goes to SQL as it is (which refuses unknown fields); a Template as its dump.
    TemplateLike = Annotated[JsonObject | m.Template, Field(union_mode="left_to_right")]
    ScheduleLike = Annotated[JsonObject | m.Schedule, Field(union_mode="left_to_right")]


# --- checking a call ----------------------------------------------------------------------------

_CONFIG = ConfigDict(arbitrary_types_allowed=True)
F = TypeVar("F", bound=Callable[..., Any])


#: What pydantic puts in an error's location for a member of a union or a validator, not a
#: field: ``older_than.float`` reads better as ``older_than``.
_TYPE_TAGS = frozenset(
    {"str", "int", "float", "bool", "bytes", "timedelta", "datetime", "date", "uuid", "dict",
     "list", "tuple", "set", "none", "json-or-python", "lax-or-strict", "chain"}
)
_TAGGED = re.compile(r"^[a-z-]+\[.*\]$")  # function-after[...], is-instance[Path], list[...]


def _where(fn: Callable[..., Any], loc: tuple[int | str, ...]) -> str:
    """``('runs', 0, 'priority')`` as ``runs[0].priority``; a positional index as its name."""
    names = list(inspect.signature(fn).parameters)  # self included, as validate_call counts
    out = ""
    for i, part in enumerate(loc):
        if i == 0 and isinstance(part, int):
            part = names[part] if part < len(names) else f"argument {part + 1}"
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in _TYPE_TAGS and not _TAGGED.match(part):
            out += f".{part}" if out else part
    return out or "arguments"


def describe(fn: Callable[..., Any], e: ValidationError) -> str:
    """The first problems of a call, one line: ``limit: Input should be a valid integer``."""
    parts: dict[str, str] = {}  # the first problem of each argument (a union says one per type)
    errors = e.errors(include_url=False)
    for err in errors:
        where = _where(fn, tuple(err["loc"]))
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "missing_argument":
            msg = "required"
        elif err["type"] == "unexpected_keyword_argument":
            msg = "no such argument"
        parts.setdefault(where.split(".")[0].split("[")[0], f"{where}: {msg}")
    shown = list(parts.values())[:3]
    more = len(parts) - len(shown)
    return "; ".join(shown) + (f" (and {more} more)" if more > 0 else "")


def checked(fn: F) -> F:
    """``fn`` with its arguments validated against its annotations first (see the module
    docstring); a bad one raises ``InvalidInput`` before anything is sent. The wrapper has
    ``fn``'s shape (coroutine, async generator, plain), so both client surfaces stay one API.
    Generators are checked when iteration starts, as their bodies run."""

    def arguments(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return args, kwargs

    functools.update_wrapper(arguments, fn)
    validate = _validate_call(config=_CONFIG)(arguments)

    def valid(
        args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        try:
            return validate(*args, **kwargs)
        except ValidationError as e:
            raise InvalidInput(describe(fn, e)) from None

    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def agen(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            a, k = valid(args, kwargs)
            async for item in fn(*a, **k):
                yield item

        return cast(F, agen)
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def coroutine(*args: Any, **kwargs: Any) -> Any:
            a, k = valid(args, kwargs)
            return await fn(*a, **k)

        return cast(F, coroutine)
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen(*args: Any, **kwargs: Any) -> Iterator[Any]:
            a, k = valid(args, kwargs)
            yield from fn(*a, **k)

        return cast(F, gen)

    @functools.wraps(fn)
    def plain(*args: Any, **kwargs: Any) -> Any:
        a, k = valid(args, kwargs)
        return fn(*a, **k)

    return cast(F, plain)


# --- turning checked arguments into what ``calls`` takes ---------------------------------------

_In = TypeVar("_In", m.RunRequest, m.EventIn, m.Completion, m.MessageIn, m.SpecDocIn)


def models_of(model: type[_In], items: Iterable[_In | Mapping[str, Any]], name: str) -> list[_In]:
    """Batch inputs as models: ``checked`` has made them models already (this is a pass over
    the list); a mapping that comes another way is validated here, named by its position."""
    out = []
    for i, item in enumerate(items):
        try:
            out.append(item if isinstance(item, model) else model.model_validate(item))
        except ValidationError as e:
            raise InvalidInput(f"{name}[{i}]: {describe(model, e)}") from None
    return out


def requests(items: Iterable[RunRequestLike]) -> list[m.RunRequest]:
    return models_of(m.RunRequest, items, "runs")


def events(items: Iterable[EventLike]) -> list[m.EventIn]:
    return models_of(m.EventIn, items, "events")


def completions(items: Iterable[CompletionLike]) -> list[m.Completion]:
    return models_of(m.Completion, items, "completions")


def messages(items: Iterable[MessageLike]) -> list[m.MessageIn]:
    return models_of(m.MessageIn, items, "messages")


def spec_docs(items: Iterable[SpecDocLike]) -> list[m.SpecDocIn]:
    return models_of(m.SpecDocIn, items, "docs")


def one_request(
    template: str,
    params: Mapping[str, Any] | None,
    lane: str | None,
    priority: int,
    run_after: Any,
    idempotency_key: str | None,
    session_id: UUID | str | None,
    max_attempts: int | None,
) -> m.RunRequest:
    try:
        return m.RunRequest(
            template=template,
            params={} if params is None else dict(params),
            lane=lane,
            priority=priority,
            run_after=run_after,
            idempotency_key=idempotency_key,
            session_id=session_id,
            max_attempts=max_attempts,
        )
    except ValidationError as e:
        raise InvalidInput(describe(one_request, e)) from None


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
    return _definition(template, m.TEMPLATE_READ_ONLY)


def schedule_json(schedule: m.Schedule | Mapping[str, Any]) -> dict[str, Any]:
    return _definition(schedule, m.SCHEDULE_READ_ONLY)


def _definition(value: BaseModel | Mapping[str, Any], read_only: frozenset[str]) -> dict[str, Any]:
    """A model as the JSON its upsert takes (without what the database sets); a mapping as it
    is (the SQL refuses unknown fields)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude=set(read_only))
    return dict(value)
