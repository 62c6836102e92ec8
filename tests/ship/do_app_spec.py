"""DigitalOcean's app spec, as pydo (DigitalOcean's own API client) describes it.

Why this: DigitalOcean publishes no installable JSON Schema of the app spec. pydo is generated
from their OpenAPI description, and the docstring of ``AppsOperations.validate_app_spec``
(the "propose" endpoint) carries the whole request body as a commented template: every key,
a placeholder of its type (``"str"``, ``bool``, ``0``, a default value), and comments saying
``Required.`` and ``Known values are: ...``. This module reads that template into a small
schema and checks a spec against it: unknown keys, wrong types, missing required keys and
values outside a known set are errors. ``{}`` in the template (a ``oneOf`` it cannot show)
accepts anything.

The template's layout: one key per line at four-space steps; a comment that wraps continues
on lines indented two more than its key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

Node = Any  # Obj | Arr | Scalar


@dataclass
class Scalar:
    kind: str  # "str", "bool", "int", "float", "any"
    enum: list[str] | None = None


@dataclass
class Arr:
    item: Node


@dataclass
class Obj:
    fields: dict[str, Node] = field(default_factory=dict)
    required: set[str] = field(default_factory=set)


_KEY = re.compile(r'^"(?P<key>[^"]+)":\s*(?P<value>.*?)(?P<comma>,)?\s*(?:#\s*(?P<comment>.*))?$')


def template_lines() -> list[tuple[int, str]]:
    """(indent, text) of the request-body template in pydo's docstring, comments joined."""
    import pydo.operations

    doc = pydo.operations.AppsOperations.validate_app_spec.__doc__ or ""
    raw = doc[doc.index("body = {") :].splitlines()
    base = len(raw[1]) - len(raw[1].lstrip()) - 4  # indent of `body = {`, as it sits in the doc
    out: list[tuple[int, str]] = [(0, "{")]
    for line in raw[1:]:
        indent = len(line) - len(line.lstrip()) - base
        text = line.strip()
        if indent % 4 == 2:  # a wrapped comment: belongs to the line above
            prev_indent, prev = out[-1]
            out[-1] = (prev_indent, f"{prev} {text}")
            continue
        if indent <= 0:
            out.append((0, "}"))
            break
        out.append((indent, text))
    return out


def _scalar(value: str, comment: str) -> Scalar:
    enum = None
    known = re.search(r"Known values are: (.*?)\.(?:\s|$)", comment)
    if known:
        enum = re.findall(r'"([^"]*)"', known.group(1))
    if value in ("bool", "True", "False"):
        return Scalar("bool")
    if re.fullmatch(r"-?\d+", value):
        return Scalar("int")
    if re.fullmatch(r"-?\d+\.\d*", value):
        return Scalar("float")
    if value.startswith('"'):
        return Scalar("str", enum)
    raise ValueError(f"unknown placeholder {value!r}")


def _required(comment: str) -> bool:
    return not comment.startswith("Optional") and "Required." in comment


def _parse(lines: list[tuple[int, str]], i: int, opener: str) -> tuple[Node, int]:
    """Parse the object or list whose opening line is ``lines[i - 1]``; return it and the
    index after its closing line."""
    if opener == "[":
        text = lines[i][1]
        if text.startswith("{"):
            item, i = _parse(lines, i + 1, "{")
        else:  # a list of scalars: `"str"` or `0  # comment`
            value, _, comment = text.partition("#")
            item = _scalar(value.strip().rstrip(","), comment.strip())
            i += 1
        while not lines[i][1].startswith("]"):
            i += 1
        return Arr(item), i + 1
    obj = Obj()
    while True:
        text = lines[i][1]
        if text.startswith("}"):
            return obj, i + 1
        m = _KEY.match(text)
        if m is None:
            raise ValueError(f"cannot read template line {text!r}")
        key, value, comment = m["key"], m["value"], (m["comment"] or "").strip()
        if value in ("{", "["):
            node, i = _parse(lines, i + 1, value)
        else:
            node = Scalar("any") if value in ("{}", "[]") else _scalar(value, comment)
            i += 1
        obj.fields[key] = node
        if _required(comment):
            obj.required.add(key)


_SCHEMA: Obj | None = None


def schema() -> Obj:
    """The ``spec`` object of pydo's app spec template (parsed once)."""
    global _SCHEMA
    if _SCHEMA is None:
        body, _ = _parse(template_lines(), 1, "{")
        _SCHEMA = body.fields["spec"]
    return _SCHEMA


def validate(spec: Any, node: Node | None = None, path: str = "spec") -> list[str]:
    """Every way ``spec`` departs from the schema, as ``path: problem`` lines."""
    node = schema() if node is None else node
    errors: list[str] = []
    if isinstance(node, Obj):
        if not isinstance(spec, dict):
            return [f"{path}: expected an object, got {type(spec).__name__}"]
        for key in sorted(node.required - set(spec)):
            errors.append(f"{path}.{key}: required")
        for key, value in spec.items():
            if key not in node.fields:
                errors.append(f"{path}.{key}: unknown key")
            else:
                errors += validate(value, node.fields[key], f"{path}.{key}")
    elif isinstance(node, Arr):
        if not isinstance(spec, list):
            return [f"{path}: expected a list, got {type(spec).__name__}"]
        for n, item in enumerate(spec):
            errors += validate(item, node.item, f"{path}[{n}]")
    else:
        ok = {
            "any": lambda v: True,
            "str": lambda v: isinstance(v, str),
            "bool": lambda v: isinstance(v, bool),
            "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        }[node.kind](spec)
        if not ok:
            errors.append(f"{path}: expected {node.kind}, got {spec!r}")
        elif node.enum and spec not in node.enum:
            errors.append(f"{path}: {spec!r} is not one of {', '.join(node.enum)}")
    return errors
