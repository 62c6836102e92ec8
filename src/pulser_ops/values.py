"""The values the control plane can hold, as pydantic types: used by the request models and by
the client's argument checks (``client.inputs``), so both refuse the same things the same way.

PostgreSQL text cannot hold NUL, and no UTF-8 can hold a lone surrogate; jsonb cannot hold NaN
or a ``\\u0000`` escape; JSON cannot hold an ``object()`` or non-UTF-8 bytes. Left to the
transports, such values failed late and differently on each (a ``TransportError`` that
retry-safe calls sent four times, a raw ``TypeError``/``RecursionError``/``UnicodeEncodeError``).
Here they are a validation error naming the value, before anything is sent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, cast

from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticSerializationError, to_jsonable_python

#: How deep a JSON value may nest (params, results, metadata, event data).
MAX_JSON_DEPTH = 100


def text_problem(value: str) -> str | None:
    """Why PostgreSQL cannot store this text, or None."""
    if "\x00" in value:
        return "contains a NUL character (\\x00), which PostgreSQL text cannot hold"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"is not valid Unicode (a lone surrogate {value[e.start]!r} at {e.start})"
    return None


def _text(value: str) -> str:
    if (problem := text_problem(value)) is not None:
        raise ValueError(problem)
    return value


def _encodable(value: str) -> str:
    """Text that only has to become UTF-8 bytes (file content may hold NUL)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"is not valid Unicode (a lone surrogate at {e.start})") from None
    return value


def plain_json(value: Any) -> Any:
    """``value`` as plain JSON data, exactly what both transports will send: UUIDs, datetimes,
    models and the like become their JSON form; what JSON or jsonb cannot hold (an object,
    non-UTF-8 bytes, NaN, NUL, nesting beyond ``MAX_JSON_DEPTH``) is refused. The walk is a
    loop, not a recursion, so no depth makes it fail otherwise."""
    try:
        plain = to_jsonable_python(value)
    except (PydanticSerializationError, ValueError, TypeError, RecursionError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "depth" in reason:
            reason = f"nested more than {MAX_JSON_DEPTH} levels deep"
        raise ValueError(f"cannot become JSON: {reason}") from None
    stack: list[tuple[Any, int]] = [(plain, 0)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, str):
            if (problem := text_problem(v)) is not None:
                raise ValueError(f"a string in it {problem}")
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise ValueError(f"cannot become JSON: {v} is not a JSON number")
        elif isinstance(v, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise ValueError(
                    f"cannot become JSON: nested more than {MAX_JSON_DEPTH} levels deep"
                )
            if isinstance(v, dict):
                stack.extend((k, depth + 1) for k in v)
                stack.extend((x, depth + 1) for x in v.values())
            else:
                stack.extend((x, depth + 1) for x in v)
    return plain


def _json_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"expected an object (a mapping), got {type(value).__name__}")
    return cast(dict[str, Any], plain_json(dict(value)))


#: Text PostgreSQL can store: no NUL, no lone surrogate.
Text = Annotated[str, AfterValidator(_text)]
#: Text that becomes UTF-8 bytes (an artifact's content, which may hold NUL: it is a file).
Content = Annotated[str, AfterValidator(_encodable)]

if TYPE_CHECKING:
    Json = Any
    JsonObject = Mapping[str, Any]
else:
    #: Any value that becomes plain JSON (see ``plain_json``); validated to that JSON.
    Json = Annotated[Any, BeforeValidator(plain_json)]
    #: A mapping that becomes a JSON object.
    JsonObject = Annotated[dict[str, Any], BeforeValidator(_json_object)]
