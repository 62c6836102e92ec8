"""The params schema builder and the run form: JSON Schema to and from rows of fields, and a
run's params from a form generated from the schema.

Pure functions, so they are tested without a server. They only translate: whether a schema is
one a template may have, and whether params satisfy it, is decided by the control plane
(``validate_template`` / ``validate_params``), the same checks that guard every upsert and
enqueue.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Types the builder offers ("" = any JSON value).
TYPES = ("string", "integer", "number", "boolean", "array", "object", "")
#: Keywords a builder row edits itself; any other keyword of a property is kept as it is.
ROW_KEYS = ("type", "default", "enum", "description")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


@dataclass
class FieldRow:
    """One param as the builder shows it; ``default`` and ``enum`` as typed (text)."""

    name: str = ""
    type: str = "string"
    required: bool = False
    default: str = ""
    enum: str = ""
    description: str = ""
    #: other keywords of the property (minLength, minimum, pattern, ...), kept as JSON
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def extra_json(self) -> str:
        return json.dumps(self.extra, sort_keys=True) if self.extra else ""


@dataclass(frozen=True)
class Problem:
    """A problem of one builder row (``row`` None: the whole schema)."""

    row: int | None
    field: str
    message: str


def _show(value: Any) -> str:
    """A value as the builder's text box shows it: strings bare, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def rows_from_schema(schema: Mapping[str, Any]) -> tuple[list[FieldRow], bool, dict[str, Any]]:
    """The rows of a schema, whether it allows params it does not list, and its other
    top-level keywords (kept, e.g. title)."""
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    listed = schema.get("required")
    required: list[Any] = listed if isinstance(listed, list) else []
    rows = []
    for name, prop in (props or {}).items():
        prop = prop if isinstance(prop, dict) else {}
        kind = prop.get("type", "")
        rows.append(
            FieldRow(
                name=str(name),
                type=kind if isinstance(kind, str) and kind in TYPES else "",
                required=name in required,
                default=_show(prop["default"]) if "default" in prop else "",
                enum=", ".join(_show(x) for x in prop.get("enum", []))
                if isinstance(prop.get("enum"), list)
                else "",
                description=str(prop.get("description", "")),
                extra={
                    k: v
                    for k, v in prop.items()
                    if k not in ROW_KEYS or (k == "type" and not isinstance(v, str))
                },
            )
        )
    allow_other = schema.get("additionalProperties", True) is not False
    rest = {
        k: v
        for k, v in schema.items()
        if k not in ("type", "properties", "required", "additionalProperties")
    }
    return rows, allow_other, rest


def typed(raw: str, kind: str) -> Any:
    """Text typed into a box, as the JSON value of a param of ``kind`` (``ValueError`` if it
    cannot be one)."""
    text = raw.strip()
    if kind == "string":
        return raw
    if kind == "integer":
        return int(text)
    if kind == "number":
        value = float(text)
        return int(value) if value.is_integer() and "." not in text and "e" not in text else value
    if kind == "boolean":
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise ValueError("expected true or false")
    return json.loads(text)  # array, object, any


def _enum_values(raw: str, kind: str) -> list[Any]:
    text = raw.strip()
    if text.startswith("["):
        values = json.loads(text)
        if not isinstance(values, list):
            raise ValueError("expected a JSON array")
        return values
    return [typed(part.strip(), kind if kind else "string") for part in text.split(",")]


def schema_from_rows(
    rows: list[FieldRow], allow_other: bool, rest: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], list[Problem]]:
    """The JSON Schema the rows describe, and what is wrong with rows (a bad name, a default
    or enum value that is not of the type)."""
    problems: list[Problem] = []
    props: dict[str, Any] = {}
    required: list[str] = []
    for i, row in enumerate(rows):
        name = row.name.strip()
        if not name:
            if row.default or row.enum or row.description:
                problems.append(Problem(i, "name", "a param needs a name"))
            continue
        if not NAME_RE.match(name):
            problems.append(Problem(i, "name", "letters, digits, _ . - (starting with a letter)"))
        if name in props:
            problems.append(Problem(i, "name", f"{name} appears twice"))
        prop: dict[str, Any] = {}
        if row.type:
            prop["type"] = row.type
        if row.description.strip():
            prop["description"] = row.description.strip()
        if row.enum.strip():
            try:
                prop["enum"] = _enum_values(row.enum, row.type)
            except ValueError as e:
                problems.append(Problem(i, "enum", f"not a list of {row.type or 'values'}: {e}"))
        if row.default.strip() or (row.type == "string" and row.default):
            try:
                prop["default"] = typed(row.default, row.type or "")
            except ValueError as e:
                problems.append(Problem(i, "default", f"not a valid {row.type or 'value'}: {e}"))
        prop.update(row.extra)
        props[name] = prop
        if row.required:
            required.append(name)
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    if not allow_other:
        schema["additionalProperties"] = False
    schema.update(rest or {})
    return schema, problems


def rows_from_form(form: Mapping[str, Any]) -> list[FieldRow]:
    """Builder rows posted as ``f-<i>-<key>`` (in row order)."""
    indexes = sorted(
        {int(m.group(1)) for k in form for m in [re.match(r"^f-(\d+)-name$", k)] if m}
    )
    rows = []
    for i in indexes:
        extra_raw = str(form.get(f"f-{i}-extra") or "").strip()
        try:
            extra = json.loads(extra_raw) if extra_raw else {}
        except ValueError:
            extra = {}
        rows.append(
            FieldRow(
                name=str(form.get(f"f-{i}-name") or ""),
                type=str(form.get(f"f-{i}-type") or ""),
                required=form.get(f"f-{i}-required") is not None,
                default=str(form.get(f"f-{i}-default") or ""),
                enum=str(form.get(f"f-{i}-enum") or ""),
                description=str(form.get(f"f-{i}-description") or ""),
                extra=extra if isinstance(extra, dict) else {},
            )
        )
    return rows


# --- the run form ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunField:
    """One input of the run form generated from a template's params schema."""

    name: str
    type: str
    required: bool
    description: str
    enum: list[Any]
    default: Any
    has_default: bool
    #: what the box shows: the posted value, else the default
    value: str

    @property
    def input(self) -> str:
        if self.enum:
            return "select"
        if self.type == "boolean":
            return "boolean"
        if self.type in ("integer", "number"):
            return "number"
        if self.type in ("array", "object", ""):
            return "json"
        return "text"

    @property
    def enum_shown(self) -> list[str]:
        return [_show(x) for x in self.enum]


def run_fields(
    schema: Mapping[str, Any], posted: Mapping[str, Any] | None = None
) -> list[RunField]:
    rows, _, _ = rows_from_schema(schema)
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    out = []
    for row in rows:
        prop = (props or {}).get(row.name) or {}
        key = f"p.{row.name}"
        has_default = "default" in prop
        value = (
            str(posted[key])
            if posted is not None and key in posted
            else (_show(prop["default"]) if has_default else "")
        )
        out.append(
            RunField(
                name=row.name,
                type=row.type,
                required=row.required,
                description=row.description,
                enum=list(prop.get("enum", [])) if isinstance(prop.get("enum"), list) else [],
                default=prop.get("default"),
                has_default=has_default,
                value=value,
            )
        )
    return out


def params_from_form(
    schema: Mapping[str, Any], form: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """A run's params from the run form: each box converted by its param's type. An empty box
    is left out (the schema's default or "is required" then applies). A box that cannot be
    its type is sent as typed, so the control plane names the problem as it would for any
    caller; only JSON that does not parse is refused here. Free-form params (a schema without
    properties) come from the ``params`` JSON box."""
    params: dict[str, Any] = {}
    problems: dict[str, str] = {}
    raw_json = str(form.get("params") or "").strip()
    if raw_json:
        try:
            loaded = json.loads(raw_json)
        except ValueError as e:
            problems[""] = f"params: not JSON ({e})"
            loaded = {}
        if not isinstance(loaded, dict):
            problems[""] = "params: expected a JSON object"
        else:
            params.update(loaded)
    for f in run_fields(schema):
        raw = form.get(f"p.{f.name}")
        if raw is None or str(raw) == "":
            continue
        text = str(raw)
        try:
            if f.enum:
                params[f.name] = f.enum[f.enum_shown.index(text)] if text in f.enum_shown else text
            else:
                params[f.name] = typed(text, f.type)
        except ValueError:
            if f.type in ("array", "object", ""):
                problems[f.name] = "not valid JSON"
            else:
                params[f.name] = text
    return params, problems
